"""Passwords: the policy (安全策略) and the one place they are hashed and checked.

Policy: at least 8 characters with three of upper, lower, digit and symbol. Enforced on every path that sets a
password: FAB's forms (FAB_PASSWORD_COMPLEXITY_VALIDATOR), the security manager's add_user/reset_password (CLI,
seed, API), and the API password change.

Hashing: argon2id (argon2-cffi) with config XUEJI_ARGON2 (default OWASP's minimum: m=19456 KiB, t=2, p=1).
Hashes FAB wrote before (werkzeug "scrypt:…" / "pbkdf2:…") still verify, and so do argon2 hashes made with other
parameters; verify_password says when a hash should be replaced, and the security manager replaces it at the
next successful sign-in (app.security). FAB_PASSWORD_HASH_METHOD no longer applies to passwords (only to FAB's
API keys).
"""
import logging
import re
import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import VerificationError
from flask import current_app
from flask_appbuilder.exceptions import PasswordComplexityValidationError
from flask_appbuilder.security.utils import is_null_password
from werkzeug.security import check_password_hash

log = logging.getLogger(__name__)

MIN_LENGTH = 8
CLASSES = (
    ("大写字母", re.compile(r"[A-Z]")),
    ("小写字母", re.compile(r"[a-z]")),
    ("数字", re.compile(r"[0-9]")),
    ("符号", re.compile(r"[^A-Za-z0-9]")),
)
RULE_TEXT = "密码至少8位，且须包含大写字母、小写字母、数字、符号中的至少三类"


def password_problem(password: str | None) -> str | None:
    """The Chinese reason a password is refused, or None when it is acceptable."""
    if not password or len(password) < MIN_LENGTH:
        return f"密码太短：{RULE_TEXT}"
    kinds = sum(1 for _, rx in CLASSES if rx.search(password))
    if kinds < 3:
        return f"密码太简单：{RULE_TEXT}"
    return None


def validate_password(password: str) -> None:
    """FAB's complexity-validator hook: raises PasswordComplexityValidationError with the reason."""
    problem = password_problem(password)
    if problem:
        raise PasswordComplexityValidationError(problem)


# --- hashing ------------------------------------------------------------------------------------------------------
ARGON2_DEFAULTS = {"time_cost": 2, "memory_cost": 19456, "parallelism": 1}    # OWASP minimum for argon2id
_LEGACY_METHODS = ("scrypt:", "pbkdf2:")            # what werkzeug's generate_password_hash (FAB) writes


def argon2_parameters() -> dict:
    """The configured parameters (config XUEJI_ARGON2 over the defaults)."""
    return {**ARGON2_DEFAULTS, **(current_app.config.get("XUEJI_ARGON2") or {})}


def _hasher() -> tuple[PasswordHasher, str]:
    """(hasher, dummy hash) for the app's current parameters, built once per app and parameter set. The dummy
    hash (of a random secret) is what a sign-in without a usable account verifies against, so it costs the same."""
    params = argon2_parameters()
    key = tuple(sorted(params.items()))
    cache = current_app.extensions.setdefault("xueji_argon2", {})
    entry = cache.get(key)
    if entry is None:
        hasher = PasswordHasher(type=Type.ID, **params)
        # OWASP's equivalent choices run from m=47104,t=1 to m=7168,t=5: memory × passes of at least 7168 × 5
        if params["memory_cost"] * params["time_cost"] < 7168 * 5 and not current_app.testing:
            log.warning("XUEJI_ARGON2 %s is below OWASP's minimum for argon2id (m=19456 KiB, t=2, p=1)", params)
        entry = cache[key] = (hasher, hasher.hash(secrets.token_urlsafe(32)))
    return entry


def hash_password(password: str) -> str:
    """The stored form of a new password: "$argon2id$v=19$m=…,t=…,p=…$salt$hash"."""
    return _hasher()[0].hash(password)


def verify_password(stored: str | None, password: str | None) -> tuple[bool, bool]:
    """(ok, needs_rehash) for a password against its stored hash. needs_rehash is only ever True with ok: the
    hash is an older format (werkzeug scrypt/pbkdf2) or argon2 with other parameters than the configured ones.
    A stored value that is no usable hash still costs one argon2 verification (no timing difference)."""
    hasher, _dummy = _hasher()
    if unusable_password(password):
        return False, False
    stored = stored or ""
    if stored.startswith("$argon2"):
        try:
            hasher.verify(stored, password)
        except (VerificationError, ValueError):     # mismatch, a hash argon2 cannot read, a lone surrogate
            return False, False
        try:
            return True, hasher.check_needs_rehash(stored)
        except ValueError:                          # verifiable, but its parameters are not readable: replace it
            return True, True
    if stored.startswith(_LEGACY_METHODS):
        try:
            ok = check_password_hash(stored, password)
        except ValueError:                          # an unknown werkzeug method or malformed parameters
            ok = False
        return ok, ok
    spend_verify_time(password)
    return False, False


def unusable_password(password) -> bool:
    """Never checked, never accepted: empty or NUL-only (FAB's is_null_password), not a string, or not encodable
    (a lone surrogate from JSON, on which FAB's own check raises)."""
    if not isinstance(password, str):
        return True
    try:
        return is_null_password(password)
    except UnicodeEncodeError:
        return True


def spend_verify_time(password: str | None) -> None:
    """Verify against the dummy hash: what a sign-in costs when there is no account (or no usable password) to
    check, so that a failure takes as long as a wrong password would. An unusable password is refused without
    hashing wherever it is given (FAB's own rule), so it costs nothing here either."""
    if unusable_password(password):
        return
    hasher, dummy = _hasher()
    try:
        hasher.verify(dummy, password)
    except (VerificationError, ValueError):
        pass

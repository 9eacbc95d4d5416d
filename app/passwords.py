"""Password policy (安全策略): at least 8 characters with three of upper, lower, digit and symbol.

Enforced on every path that sets a password: FAB's forms (FAB_PASSWORD_COMPLEXITY_VALIDATOR), the security
manager's add_user/reset_password (CLI, seed, API), and the API password change.
"""
import re

from flask_appbuilder.exceptions import PasswordComplexityValidationError

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

"""Settings. Everything secret or site-specific comes from the environment.

DATABASE_URL      sqlite:///… (default: instance/xueji.db), postgresql+psycopg://…, mysql+pymysql://…
SECRET_KEY        if unset, generated once into instance/secret_key and reused
RATELIMIT_STORAGE_URI  memory:// (one process) or redis://127.0.0.1:6379/0 (several gunicorn workers)
DATABASE_REPLICA_URLS  postgresql+psycopg://… streaming replicas, comma-separated (default none); see docs/DEPLOY.md
XUEJI_QUEUE_URL   redis://host:6379/1: exports and large checks/imports run in `xueji worker` processes (default
                  none: web threads)
XUEJI_BACKGROUND_ROWS  files (and detection scopes) above this many rows run as background tasks (default 2000)
PROXY_FIX_X_FOR   number of reverse proxies in front that set X-Forwarded-For/-Proto (default 0: trust none)
EXCHANGE_KEY_PATH the installation's Ed25519 key for 跨省转学 packages (default instance/exchange_key, generated once)
XUEJI_FILE_STORE  local (default: files under UPLOAD_FOLDER) or database (files every server sees); see docs/DEPLOY.md
"""
import os
import secrets
from datetime import timedelta

from flask_appbuilder.const import AUTH_DB

BASE_DIR = os.path.abspath(os.path.dirname(__file__))
INSTANCE_DIR = os.environ.get("XUEJI_INSTANCE", os.path.join(BASE_DIR, "instance"))


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated into instance/ (never in the repo)."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    os.makedirs(INSTANCE_DIR, exist_ok=True)
    path = os.path.join(INSTANCE_DIR, "secret_key")
    if not os.path.exists(path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    with open(path) as f:
        return f.read().strip()


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.lower() in ("1", "true", "yes", "on")


def database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        # Heroku-style URLs name no driver; we ship psycopg 3 and PyMySQL.
        if url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url[len("postgres://"):]
        elif url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://"):]
        elif url.startswith("mysql://") or url.startswith("mariadb://"):
            url = "mysql+pymysql://" + url.split("://", 1)[1]
        return url
    os.makedirs(INSTANCE_DIR, exist_ok=True)
    return "sqlite:///" + os.path.join(INSTANCE_DIR, "xueji.db")


class Config:
    APP_NAME = "学籍管理 Xueji"
    APP_THEME = ""
    SECRET_KEY = _secret_key()
    SQLALCHEMY_DATABASE_URI = database_url()
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    SQLALCHEMY_TRACK_MODIFICATIONS = False
    # Read replicas (app/replicas.py, docs/DEPLOY.md): PostgreSQL streaming replicas for GET requests' reads.
    # None by default: then every query goes to DATABASE_URL, exactly as without this feature.
    DATABASE_REPLICA_URLS = os.environ.get("DATABASE_REPLICA_URLS", "")           # comma-separated
    DATABASE_REPLICA_MAX_LAG_SECONDS = float(os.environ.get("DATABASE_REPLICA_MAX_LAG_SECONDS", "5"))
    DATABASE_REPLICA_CHECK_SECONDS = float(os.environ.get("DATABASE_REPLICA_CHECK_SECONDS", "2"))
    DATABASE_REPLICA_RETRY_SECONDS = float(os.environ.get("DATABASE_REPLICA_RETRY_SECONDS", "30"))
    # Background jobs (app/jobs.py, docs/DEPLOY.md "Background jobs: the queue"): with XUEJI_QUEUE_URL set, Excel
    # exports and background tasks (app/tasks.py) are RQ jobs on that Redis, run by `flask --app run xueji worker`
    # processes. Unset (the default), they run in a thread of the web worker that starts them.
    XUEJI_QUEUE_URL = os.environ.get("XUEJI_QUEUE_URL", "")
    XUEJI_QUEUE_NAME = os.environ.get("XUEJI_QUEUE_NAME", "xueji")
    # A run whose worker dies (no lease renewal for LEASE seconds) is retried RETRIES times, then reported
    # interrupted; a run is stopped after JOB_TIMEOUT s; idle workers look for lost runs every MAINTENANCE s.
    XUEJI_QUEUE_RETRIES = int(os.environ.get("XUEJI_QUEUE_RETRIES", "2"))
    XUEJI_QUEUE_JOB_TIMEOUT = int(os.environ.get("XUEJI_QUEUE_JOB_TIMEOUT", "1800"))
    XUEJI_QUEUE_LEASE_SECONDS = int(os.environ.get("XUEJI_QUEUE_LEASE_SECONDS", "30"))
    XUEJI_QUEUE_MAINTENANCE_SECONDS = int(os.environ.get("XUEJI_QUEUE_MAINTENANCE_SECONDS", "30"))
    XUEJI_EXPORT_ROW_DELAY = float(os.environ.get("XUEJI_EXPORT_ROW_DELAY", "0"))   # tests only: a pause per row
    # Files of more rows than this are checked, committed and imported by a background task (app/tasks.py), as
    # is 问题学籍 detection over a scope of more students; smaller ones run in the request, as before.
    XUEJI_BACKGROUND_ROWS = int(os.environ.get("XUEJI_BACKGROUND_ROWS", "2000"))
    # 学籍统计 of these scope levels is read from the snapshot (app/statistics.py, refreshed nightly or by 刷新统计);
    # "all" is the superadmin's whole installation; schools and counties stay live. "" = every page live.
    XUEJI_STATISTICS_SUMMARY_LEVELS = os.environ.get("XUEJI_STATISTICS_SUMMARY_LEVELS", "all,province,city")
    XUEJI_TASK_DELAY = float(os.environ.get("XUEJI_TASK_DELAY", "0"))     # tests only: a pause before a task works

    # Alembic owns every table, FAB's ab_* included (FAB5-NOTES §6): FAB must not create tables at boot.
    FAB_CREATE_DB = _env_bool("FAB_CREATE_DB", False)
    FAB_UPDATE_PERMS = _env_bool("FAB_UPDATE_PERMS", False)
    FAB_SECURITY_MANAGER_CLASS = "views.security.XuejiSecurityManager"
    FAB_ADD_SECURITY_API = False          # user/role admin goes through the scoped views only
    FAB_API_SWAGGER_UI = True
    FAB_API_MAX_PAGE_SIZE = 100
    FAB_API_SHOW_STACKTRACE = False

    AUTH_TYPE = AUTH_DB
    AUTH_ROLE_ADMIN = "系统管理员"
    AUTH_ROLE_PUBLIC = "Public"
    AUTH_USER_REGISTRATION = False
    FAB_PASSWORD_COMPLEXITY_ENABLED = True
    FAB_PASSWORD_COMPLEXITY_VALIDATOR = "app.passwords:validate_password"  # resolved in create_app
    PASSWORD_MAX_AGE_DAYS = 90
    # Password hashes: argon2id (app/passwords.py), OWASP's minimum by default; raise memory_cost/time_cost at will:
    # existing hashes are re-made with the new parameters at each account's next sign-in (docs/DEPLOY.md).
    # FAB_PASSWORD_HASH_METHOD no longer applies to passwords.
    XUEJI_ARGON2 = {"time_cost": 2, "memory_cost": 19456, "parallelism": 1}    # KiB for memory_cost
    LOGIN_MAX_FAILURES = 5
    LOCKOUT_MINUTES = 15

    # Login throttling per client address, on the web form and on /api/v1/security/login alike.
    AUTH_RATE_LIMITED = True
    RATELIMIT_ENABLED = True
    AUTH_RATE_LIMIT = os.environ.get("AUTH_RATE_LIMIT", "20 per minute")
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI", "memory://")
    # Redis down must not stop people signing in: count in the process's memory until it is back.
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    RATELIMIT_SWALLOW_ERRORS = True
    # Behind nginx the client address is in X-Forwarded-For: the login limit and the audit log need the real one.
    # Only as many hops as there are proxies are trusted; exposed directly (0), the header is ignored.
    PROXY_FIX_X_FOR = int(os.environ.get("PROXY_FIX_X_FOR", "0"))

    # Idle timeout: the cookie is re-issued on each request and dies after 30 idle minutes.
    PERMANENT_SESSION_LIFETIME = timedelta(minutes=30)
    SESSION_REFRESH_EACH_REQUEST = True
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _env_bool("SESSION_COOKIE_SECURE", False)
    # Flask-Login's remember-me cookie (FAB signs in with remember=False; kept as strict if that ever changes)
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE
    JWT_ACCESS_TOKEN_EXPIRES = timedelta(minutes=30)

    WTF_CSRF_ENABLED = True
    WTF_CSRF_TIME_LIMIT = None

    BABEL_DEFAULT_LOCALE = "zh"
    BABEL_DEFAULT_FOLDER = "translations"
    LANGUAGES = {
        "zh": {"flag": "cn", "name": "中文"},
        "en": {"flag": "gb", "name": "English"},
    }

    # Evidence and upload files live outside static/, served only through scoped downloads.
    UPLOAD_FOLDER = os.path.join(INSTANCE_DIR, "uploads")
    # Where kept files live (app/filestore.py): "local" (folders under UPLOAD_FOLDER; several servers must share it)
    # or "database" (in the application database: every server reads them, its backup covers them)
    XUEJI_FILE_STORE = os.environ.get("XUEJI_FILE_STORE", "local")
    MAX_CONTENT_LENGTH = 12 * 1024 * 1024
    # Hostile input is refused before any view reads it (app.errors.check_request): a body over MAX_CONTENT_LENGTH
    # answers 413 unread, JSON (bodies and the API's ?q=) nested deeper than this answers 400, and a list page's
    # psize_<View> is capped (FAB leaves it unbounded; its own choices stop at 100).
    MAX_JSON_DEPTH = 32
    MAX_LIST_PAGE_SIZE = 1000

    # 跨省转学: this installation's signing key (generated once, 0600). Two installations on one machine need two.
    EXCHANGE_KEY_PATH = os.environ.get("EXCHANGE_KEY_PATH") or os.path.join(INSTANCE_DIR, "exchange_key")

    DEMO_PASSWORD = "Xueji#2026"

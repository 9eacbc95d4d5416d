"""Extension singletons (Superset's extensions/ pattern). AppBuilder itself is built per app in create_app."""
from flask_appbuilder.models.sqla import Model
from flask_appbuilder.utils.legacy import get_sqla_class
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app.replicas import RoutingSession

# One metadata for FAB's ab_* tables and ours, so Alembic sees them all (FAB5-NOTES §6).
# RoutingSession sends a GET request's reads to a read replica when DATABASE_REPLICA_URLS is set (app/replicas.py);
# without it, it is Flask-SQLAlchemy's own session.
db = get_sqla_class()(metadata=Model.metadata, session_options={"class_": RoutingSession})
csrf = CSRFProtect()
migrate = Migrate()


@event.listens_for(Engine, "connect")
def _sqlite_foreign_keys(dbapi_connection, connection_record):
    """SQLite leaves foreign keys unenforced unless asked, per connection; PostgreSQL and MariaDB enforce them."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


@event.listens_for(Engine, "savepoint")
def _sqlite_begin_before_savepoint(conn, name):
    """pysqlite begins a transaction only before a data-changing statement, never before a SAVEPOINT, which SQLite
    then opens as a transaction of its own: its RELEASE commits, and a request killed after it leaves half its
    writes (found by killing a process mid-commit). Begin the transaction first, as PostgreSQL and MariaDB have."""
    if conn.dialect.name == "sqlite":
        dbapi_connection = conn.connection.dbapi_connection
        if not dbapi_connection.in_transaction:
            dbapi_connection.execute("BEGIN")

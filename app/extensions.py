"""Extension singletons (Superset's extensions/ pattern). AppBuilder itself is built per app in create_app."""
from flask_appbuilder.models.sqla import Model
from flask_appbuilder.utils.legacy import get_sqla_class
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect

# One metadata for FAB's ab_* tables and ours, so Alembic sees them all (FAB5-NOTES §6).
db = get_sqla_class()(metadata=Model.metadata)
csrf = CSRFProtect()
migrate = Migrate()

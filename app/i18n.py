"""UI strings are written in Chinese (the users' words) and translated to English by the catalog in
app/translations/en (make translations). Use _l for labels defined at import time."""
from flask_babel import gettext as _, lazy_gettext as _l  # noqa: F401

"""The navigation menu, rendered once per role set and language instead of on every page.

FAB's navbar asks has_access for each of its ~45 menu entries and translates each label on every request; that is
a third of a list page's Python time. What the menu shows depends only on the account's roles (menu_access
permissions) and the language, so its HTML is kept per (role ids, locale) for as long as the permissions it was
built from (app.security's cache: _CACHE_TTL, emptied by any role edit in this process)."""
import time

from flask import g
from flask_babel import get_locale

from app.security import _CACHE_TTL, role_cache

CACHE = "menu"


def _key() -> tuple:
    user = g.get("user")
    roles = tuple(sorted(r.id for r in user.roles)) if user is not None and user.is_authenticated else ()
    groups = tuple(sorted(gr.id for gr in getattr(user, "groups", ()) or ())) if roles else ()
    return roles, groups, str(get_locale())


def cached_menu():
    """The menu's HTML for this request's roles and language, or None when it must be rendered."""
    hit = role_cache(CACHE).get(_key())
    if hit is not None and time.monotonic() - hit[0] < _CACHE_TTL:
        return hit[1]
    return None


def remember_menu(html):
    role_cache(CACHE)[_key()] = (time.monotonic(), html)
    return html


def install(app) -> None:
    app.jinja_env.globals.update(xueji_cached_menu=cached_menu, xueji_remember_menu=remember_menu)

"""Harness for the real-browser journeys (tests/test_browser.py): the app on a fresh SQLite demo database,
served by werkzeug's threaded WSGI server on a free 127.0.0.1 port, driven by Debian's chromium through
Playwright (sync API). Nothing is downloaded: Playwright launches /usr/bin/chromium (XUEJI_CHROMIUM elsewhere).

CSRF protection is on, as in production: the browser submits the real forms with their tokens.
"""
import io
import os
import re
import struct
import threading
import zlib
from contextlib import contextmanager
from datetime import datetime

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = os.environ.get("XUEJI_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = os.path.join(ROOT, "test-artifacts", "browser")
DEMO_PASSWORD = "Xueji#2026"


def missing_browser() -> str | None:
    """Why the journeys cannot run here (None when they can)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -r requirements.txt)"
    if not os.access(CHROMIUM, os.X_OK):
        return f"chromium not found at {CHROMIUM} (apt-get install chromium fonts-noto-cjk, or set XUEJI_CHROMIUM)"
    return None


def build_app(tmp: str):
    """A migrated app with a freshly loaded demo world in its own SQLite file under ``tmp``."""
    from app import create_app
    from app.cli import prepare_database
    from app.demo import load_demo
    from app.extensions import db
    app = create_app({
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp}/browser.db",
        "UPLOAD_FOLDER": os.path.join(tmp, "uploads"),
        "FAB_PASSWORD_HASH_METHOD": "pbkdf2:sha256:1",     # fast hashing in tests only (FAB API keys)
        "XUEJI_ARGON2": {"time_cost": 1, "memory_cost": 8, "parallelism": 1},    # cheap argon2id in tests only
        "WTF_CSRF_ENABLED": True,                          # as in production
        "AUTH_RATE_LIMIT": "1000 per minute",              # a dozen logins in a few seconds from one address
    })
    with app.app_context():
        prepare_database(False)
        load_demo(app.appbuilder, classes_per_grade=2, students_per_class=4, graduates=20, password=DEMO_PASSWORD,
                  near_cap=False, with_problems=False)
        db.session.remove()
    return app


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):      # no access log on the test output
        pass


class LiveServer:
    """``app`` served by werkzeug (threaded) in a background thread on a free port of 127.0.0.1."""

    def __init__(self, app):
        self.server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="xueji-live-server", daemon=True)

    def start(self) -> "LiveServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def png_bytes(width: int = 24, height: int = 16, rgb=(200, 40, 40)) -> bytes:
    """A real (tiny, valid) PNG image: signature, IHDR, one zlib-compressed IDAT, IEND."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))     # filter byte 0 + RGB pixels per row
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def jpeg_bytes(width: int = 600, height: int = 800) -> bytes:
    """A real JPEG photo made with Pillow (a face-like portrait: light background, head, shoulders), larger than
    the 13:16 passport format so that the app has something to crop."""
    from PIL import Image, ImageDraw
    img = Image.new("RGB", (width, height), (214, 228, 240))
    draw = ImageDraw.Draw(img)
    draw.ellipse((width * 0.3, height * 0.18, width * 0.7, height * 0.55), fill=(236, 200, 170))     # head
    draw.rectangle((width * 0.15, height * 0.6, width * 0.85, height), fill=(40, 60, 120))            # shoulders
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90)
    return out.getvalue()


def menu(page, category: str, item: str) -> None:
    """Open a navbar menu (its Chinese title) and click one of its entries, as a user does."""
    page.locator("a.dropdown-toggle", has_text=category).first.click()
    page.locator(".dropdown-menu a", has_text=re.compile(f"^\\s*{re.escape(item)}\\s*$")).first.click()


def menu_links(page) -> list[tuple[str, str, str]]:
    """Every entry of the navbar's menus on the current page: (menu title, entry label, href); the language
    switch and 注销 left out (they change the session, they are not screens)."""
    rows = page.eval_on_selector_all(
        ".navbar .navbar-nav > li.dropdown",
        """items => items.flatMap(li => {
             const title = li.querySelector("a.dropdown-toggle").textContent.trim();
             return [...li.querySelectorAll(".dropdown-menu a[href]")].map(
                 a => [title, a.textContent.trim(), a.getAttribute("href")]);
           })""")
    return [(t, label, href) for t, label, href in rows
            if href and not href.startswith(("#", "javascript")) and "/lang/" not in href and "/logout" not in href]


# What a Chinese page must never show (visible text, as page.inner_text("body") reads it): Python values and
# reprs, microsecond timestamps, and Flask-AppBuilder's English UI words (those of its templates, forms, list
# widgets and security screens that a page of this app can show; FAB's zh catalog leaves some untranslated).
FAB_ENGLISH = (
    "Search", "Add Filter", "Record Count", "No records found", "Actions", "Refresh", "Back", "Save", "Edit record",
    "Add a new record", "Show record", "Delete record", "List", "User info", "User Info", "Reset my password",
    "Reset Password", "Logout", "Login", "It's not a good policy", "can read on", "can write on", "can list on",
    "can show on", "can add on", "can edit on", "can delete on", "menu access on", "Permission", "Permissions",
    "Select a value", "Select Value", "Select a State", "Delete", "Add", "Edit", "Show", "Detail", "Home",
    "List Users", "List Roles", "List Groups", "Groups", "Security", "User Statistics", "Login Count",
    "Failed Login Count", "Group by", "Are you sure you want to delete this item?", "The user's password",
    "Edit User Information", "User information changed", "Not a valid choice", "This field is required",
    "Database Error", "Page size", "Equal to", "Not Equal to", "Starts with", "Start with", "Ends with",
    "Contains", "Greater than", "Smaller than", "Relation", "First Name", "Last Name", "User Name", "Email",
    "Is Active", "Confirm Password", "Password", "Changed on", "Created on", "Changed by", "Created by",
    "Added Row", "Changed Row", "Deleted Row", "Access is Denied", "Language", "Views/Menus", "Base Permissions",
    "Permission on Views/Menus", "Roles", "Users", "Role", "Your user information",
)
_AROUND = r"(?<![A-Za-z0-9_./-]){}(?![A-Za-z0-9_/-])"     # a whole word or phrase, not part of a path or name
FAB_ENGLISH_RE = re.compile(_AROUND.format(
    "(" + "|".join(re.escape(s) for s in sorted(FAB_ENGLISH, key=len, reverse=True)) + ")"))
LEAKS = (
    ("None", re.compile(r"__None\b|(?<![A-Za-z0-9_])None(?![A-Za-z0-9_])")),
    ("Python布尔值", re.compile(r"(?<![A-Za-z0-9_])(?:True|False)(?![A-Za-z0-9_])")),
    ("对象表示", re.compile(r" object at 0x[0-9A-Fa-f]+|<(?:models|app|views)\.[\w.]+|<[A-Z]\w+ \d+>")),   # "<Student 5>"
    ("微秒时间", re.compile(r"\d{1,2}:\d{2}:\d{2}[.,]\d{1,6}(?!\d)")),
    ("Traceback", re.compile(r"Traceback \(most recent call last\)")),
)


def visible_leaks(text: str) -> list[str]:
    """What in ``text`` (a page's visible text) is not for a Chinese user: each finding as "kind: match", once."""
    found = [f"英文界面: {m.group(1)}" for m in FAB_ENGLISH_RE.finditer(text)]
    for kind, pattern in LEAKS:
        found += [f"{kind}: {m.group(0).strip()}" for m in pattern.finditer(text)]
    return list(dict.fromkeys(found))


class Journey:
    """One journey in one browser (a context of its own: cookies, cache), its page, and its screenshot in
    test-artifacts/browser/<name>.png (``<name>.failed.png`` plus the page's HTML when it failed). Users take
    turns on it like on a shared office machine: 注销, then the next one signs in."""

    def __init__(self, browser, base_url: str, name: str, timeout_ms: int = 15_000):
        self.name = name
        self.context = browser.new_context(base_url=base_url, locale="zh-CN", accept_downloads=True,
                                           viewport={"width": 1280, "height": 900})
        self.context.set_default_timeout(timeout_ms)
        self.page = self.context.new_page()
        self.user = None
        for stale in (f"{name}.png", f"{name}.failed.png", f"{name}.failed.html"):
            if os.path.exists(os.path.join(ARTIFACTS, stale)):
                os.remove(os.path.join(ARTIFACTS, stale))

    def login(self, username: str, password: str = DEMO_PASSWORD):
        """Sign ``username`` in through the login form (after signing the previous user out); returns the page,
        on whatever page the app sends the user to after signing in."""
        page = self.page
        if self.user is not None:                 # 注销 from the user menu of the navbar
            logout = page.locator('a[href="/logout/"]')
            page.locator("li.dropdown", has=logout).locator("a.dropdown-toggle").click()
            logout.click()
            page.wait_for_load_state()
        page.goto("/login/")
        page.fill("#username", username)
        page.fill("#password", password)
        page.click("input[type=submit]")
        page.wait_for_url(lambda u: "/login" not in u)
        self.user = username
        return page

    def snap(self, screen: str, page=None) -> str:
        """A screenshot of the whole current page (or of ``page``, another tab of the journey) as
        test-artifacts/browser/<screen>.png: a journey keeps one of each screen it passes through."""
        os.makedirs(ARTIFACTS, exist_ok=True)
        path = os.path.join(ARTIFACTS, f"{screen}.png")
        (page or self.page).screenshot(path=path, full_page=True)
        return path

    def finish(self, failed: bool) -> None:
        os.makedirs(ARTIFACTS, exist_ok=True)
        try:
            shot = os.path.join(ARTIFACTS, f"{self.name}.failed.png" if failed else f"{self.name}.png")
            self.page.screenshot(path=shot, full_page=True)
            if failed:
                with open(os.path.join(ARTIFACTS, f"{self.name}.failed.html"), "w", encoding="utf-8") as f:
                    f.write(self.page.content())
        except Exception:             # a crashed page must not hide the test's own failure
            pass
        self.context.close()


# --- what both journey modules share: the served world and the per-test fixtures --------------------------------
# A module imports these (``from tests.browser import live_app, journey, _fixed_clock``): pytest uses fixtures
# found in the module's namespace, the autouse clock included.

NOW = datetime(2026, 11, 20, 10, 0)      # the demo's school year 2026; a working day, no calendar pause


@contextmanager
def served(tmp: str, cached_static: bool = False):
    """(app, server, browser) on a fresh demo database in ``tmp``: one server and one chromium, stopped (and the
    database closed) at the end. ``cached_static``: FAB's css, js and fonts (some twenty per page) are cached by
    the browser, as behind the production web server, instead of revalidated on every page."""
    reason = missing_browser()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright
    from app import clock
    from app.extensions import db
    clock.fix(NOW)
    try:
        app = build_app(tmp)
    finally:
        clock.fix(None)
    if cached_static:
        app.config["SEND_FILE_MAX_AGE_DEFAULT"] = 600
    server = LiveServer(app).start()
    pw = sync_playwright().start()
    browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
    try:
        yield app, server, browser
    finally:
        browser.close()
        pw.stop()
        server.stop()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def live_app(live):
    """The served app, for looking at the database (not named ``app``: pytest-flask would patch that one)."""
    return live[0]


@pytest.fixture(autouse=True)
def _fixed_clock():
    """The server runs in this process, so the fixed clock holds for its requests too."""
    from app import clock
    clock.fix(NOW)
    yield
    clock.fix(None)


@pytest.fixture
def journey(live, request):
    """The journey named after the test; its last page is screenshotted (``.failed.png`` when it failed)."""
    _app, server, browser = live
    j = Journey(browser, server.url, request.node.name.removeprefix("test_"))
    failed_before = request.session.testsfailed
    yield j
    j.finish(failed=request.session.testsfailed > failed_before)


def expect(target):
    from playwright.sync_api import expect as playwright_expect
    return playwright_expect(target)


def query(app, stmt):
    from app.extensions import db
    with app.app_context():
        try:
            return db.session.execute(stmt).all()
        finally:
            db.session.remove()


def pick(page, field, text):
    """Choose ``text`` in the select2 dropdown of form field ``field`` the way a user does: open it, click."""
    page.locator(f"select#{field} + .select2-container .select2-selection").click()
    page.locator(".select2-results__option", has_text=text).first.click()

"""Real-browser journeys through the screens added lately (issue 16, "What a registrar sees"), and a crawl of every
menu entry of every demo role that fails on text a Chinese user must not see.

Same harness as tests/test_browser.py (tests/browser.py): Debian's chromium driven by Playwright against the app
served by werkzeug (threaded, CSRF on) on a fresh SQLite demo database of this module's own. Each journey starts
from the menus, asserts on the Chinese text the user sees and on the database afterwards, and keeps a screenshot
of each screen it passes in test-artifacts/browser/<screen>.png.

The crawl runs first, on the fresh demo world (so what it reads, the audit log's first page included, is the same
every run). The journeys then share the module's database in file order: the 休学 filed on the 学籍异动 start page
is the 在办业务 that blocks one graduate in the graduation journey (which files it itself when run alone).
"""
import os
import re
import shutil
import tempfile
from datetime import date

import pytest
from sqlalchemy import select

from tests.browser import (ARTIFACTS, _fixed_clock, expect, jpeg_bytes, journey, live_app,  # noqa: F401
                           menu, menu_links, pick, png_bytes, query, served, visible_leaks)

A1, A2 = "4101020001", "4101020002"       # 中原区: the 初中 and the 高中
SEASON = "11-01..12-31"                  # the graduation window the county opens for itself in the journey

# Leaks a Python fix removed are no longer listed: (path prefix, finding) -> the fix, for a leak that must wait.
# A finding not listed fails its test; a listed one that no longer shows on a page visited fails too.
KNOWN: dict = {}
# Menu entries a role is shown but may not open (403).
KNOWN_FORBIDDEN: dict = {}


def known_for(path: str) -> set[str]:
    return {finding for (prefix, finding) in KNOWN if path.startswith(prefix)}


def check_text(page, known_seen: set | None = None) -> list[str]:
    """The visible text of ``page`` checked: the findings that are not known (empty when the page is clean). Known
    findings seen are added to ``known_seen`` as (path prefix, finding)."""
    path = re.sub(r"^https?://[^/]+", "", page.url).split("?")[0]
    found = visible_leaks(page.inner_text("body"))
    known = known_for(path)
    if known_seen is not None:
        known_seen.update((prefix, f) for (prefix, f) in KNOWN if path.startswith(prefix) and f in found)
    return [f"{path}: {f}" for f in found if f not in known]


def assert_clean(page) -> None:
    """No text on ``page`` a Chinese user must not see, and each known leak of this page still there (so that a
    fix removes it from KNOWN)."""
    seen: set = set()
    found = check_text(page, seen)
    assert not found, "text a Chinese user must not see:\n" + "\n".join(found)
    path = re.sub(r"^https?://[^/]+", "", page.url).split("?")[0]
    stale = {k for k in KNOWN if path.startswith(k[0])} - seen
    assert not stale, f"fixed, remove from KNOWN: {sorted(stale)}"


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """(app, server, browser): one fresh database, one server, one chromium for the module, stopped at its end.
    The database is in memory-backed /dev/shm where there is one: FAB's permission sync commits some 400 times,
    and each commit waits for the disk otherwise."""
    tmp = tempfile.mkdtemp(prefix="xueji-screens-", dir="/dev/shm") if os.path.isdir("/dev/shm") \
        else str(tmp_path_factory.mktemp("screens"))
    try:
        with served(tmp, cached_static=True) as world:
            yield world
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def school_id(app, code):
    from models import School
    return query(app, select(School.id).where(School.code == code))[0][0]


def graduating(app, code, offset=0):
    """A 2024级 student of school ``code`` still 在校 (the graduating grade of the demo's 2026 school year)."""
    from models import School, Student
    return query(app, select(Student.id, Student.name, Student.xjh, Student.class_id)
                 .join(School, School.id == Student.school_id)
                 .where(School.code == code, Student.cohort_year == 2024, Student.status == "在校",
                        Student.deleted_at.is_(None))
                 .order_by(Student.id).offset(offset).limit(1))[0]


def open_request_of(app, student_id):
    from models.requests import OPEN_STATES, Request
    rows = query(app, select(Request.id).where(Request.student_id == student_id, Request.state.in_(OPEN_STATES)))
    return rows[0][0] if rows else None


def file_suspension(page, student):
    """On the student's 学籍异动 start page: 休学 with a PNG 证明材料; returns the request's number."""
    page.locator("#change-types tr.offered").get_by_role("link", name="休学", exact=True).click()
    expect(page.locator("h3")).to_contain_text(f"学籍异动申请：{student.name}")
    page.locator("select[name=type]").select_option("休学")
    page.locator("textarea[name=reason]").fill("因病住院治疗，家长申请休学一年")
    page.locator("input[name=evidence]").set_input_files(
        {"name": "医院证明.png", "mimeType": "image/png", "buffer": png_bytes()})
    page.get_by_role("button", name="提交申请").click()
    expect(page.locator("body")).to_contain_text("已提交，等待学校学籍主管领导审核")
    return int(re.search(r"/request/show/(\d+)", page.url).group(1))


def find_student(page, text):
    page.locator("input[name=q]").fill(text)
    page.get_by_role("button", name="查找学生").click()
    page.wait_for_load_state()


# --- the crawl ---------------------------------------------------------------------------------------------------

CRAWLED = ("admin", "county_a_clerk", "school_a1_clerk", "school_a1_leader")


def test_every_menu_page_speaks_chinese(live, journey):
    """Each demo role (系统管理员, 教育局经办, 学校学籍管理员, 学校学籍主管领导) opens its home page and every entry of
    its menus in Chromium: none may answer with an error, and none may show "None", a Python value or repr, a
    timestamp to the microsecond or Flask-AppBuilder's English UI words (tests/browser.py FAB_ENGLISH)."""
    problems, known_seen, visited, forbidden = [], set(), set(), set()
    os.makedirs(ARTIFACTS, exist_ok=True)
    for old in os.listdir(ARTIFACTS):                 # a page's screenshot is kept only while it fails
        if old.startswith("crawl_") and old.endswith(".failed.png"):
            os.remove(os.path.join(ARTIFACTS, old))
    for username in CRAWLED:
        page = journey.login(username)
        pages = [("首页", "首页", page.url)] + menu_links(page)
        assert len(pages) > 10, (username, pages)
        for category, label, href in pages:
            if href == page.url:                     # the home page the sign-in landed on
                status = 200
            else:   # the page's text is there and its scripts ran (select2 writes its choice): no need for "load"
                response = page.goto(href, wait_until="domcontentloaded")
                status = response.status if response else 0
            path = re.sub(r"^https?://[^/]+", "", page.url).split("?")[0]
            visited.add(path)
            if status >= 400:
                forbidden.add((username, href))
                if (username, href) not in KNOWN_FORBIDDEN:
                    problems.append(f"{username} {category} → {label} ({href}): HTTP {status}")
                continue
            found = check_text(page, known_seen)
            if found:
                problems.extend(f"{username} {category} → {label}: {f}" for f in found)
                slug = re.sub(r"\W+", "_", href.strip("/")) or "home"
                page.screenshot(path=os.path.join(ARTIFACTS, f"crawl_{username}_{slug}.failed.png"), full_page=True)
    assert not problems, "text a Chinese user must not see:\n" + "\n".join(problems)
    stale = {k for k in KNOWN if any(p.startswith(k[0]) for p in visited)} - known_seen
    assert not stale, f"fixed, remove from KNOWN: {sorted(stale)}"
    assert set(KNOWN_FORBIDDEN) <= forbidden, f"fixed, remove from KNOWN_FORBIDDEN: {set(KNOWN_FORBIDDEN) - forbidden}"


# --- 学籍管理 → 学籍异动 ----------------------------------------------------------------------------------------

def test_statuschange_start_page(live_app, journey):
    """The registrar finds a student by 学籍号 and by name, sees only the 异动 types this student may have now,
    each refused one with its reason (退学 and 开除 not in 义务教育), and starts a 休学 from there."""
    from models import Student
    from models.requests import Request
    pupil = graduating(live_app, A1)
    a1 = school_id(live_app, A1)

    page = journey.login("school_a1_clerk")
    menu(page, "学籍管理", "学籍异动")
    expect(page.locator("h3")).to_have_text("学籍异动")

    # by 学籍号 (typed in lower case, as happens): the student at once
    find_student(page, pupil.xjh.lower())
    expect(page.locator("h4:has(small)")).to_contain_text(f"{pupil.name}（{pupil.xjh}）")
    expect(page.locator("h4:has(small)")).to_contain_text("2024级 初中，学籍状态：在校")
    offered = page.locator("#change-types tr.offered")
    refused = page.locator("#change-types tr.refused")
    names = [t.strip() for t in offered.locator("td:first-child").all_inner_texts()]
    assert "休学" in names and "退学" not in names and "开除" not in names and "复学" not in names
    for row in offered.all():                      # an offered type is a button to its form, marked 可以办理
        expect(row.locator("a.btn")).to_have_count(1)
        expect(row.locator("td").nth(1)).to_have_text("可以办理")
    for row in refused.all():                      # a refused one is no link, and says why
        expect(row.locator("a")).to_have_count(0)
        expect(row.locator("td").nth(1)).to_have_text(re.compile(r"^不能办理：\S+"))
    reasons = {r.locator("td").first.inner_text().strip(): r.locator("td").nth(1).inner_text().strip()
               for r in refused.all()}
    assert reasons["退学"] == "不能办理：义务教育阶段学生不能办理退学"
    assert reasons["开除"] == "不能办理：义务教育阶段学生不能办理开除"
    assert "须为休学" in reasons["复学"]
    assert len(names) + len(reasons) == page.locator("#change-types tr").count() - 1     # every type, once
    # offered first, refused after
    classes = page.locator("#change-types tr").evaluate_all("rows => rows.slice(1).map(r => r.className)")
    assert classes == sorted(classes, key=lambda c: "refused" in c)
    assert_clean(page)
    journey.snap("statuschange_start")

    # by name: a part shared by several students lists them all (this school's only), then one is chosen
    everyone = query(live_app, select(Student.name, Student.school_id).where(Student.deleted_at.is_(None)))

    def named(c, here_only):
        return sum(c in n for n, sid in everyone if sid == a1 or not here_only)
    # the character in most of this school's names that other schools' students have too
    part = max({c for n, sid in everyone if sid == a1 for c in n},
               key=lambda c: (named(c, False) > named(c, True), named(c, True), c))
    expected = named(part, True)
    assert expected > 1 and named(part, False) > expected     # the other schools' students are not listed
    find_student(page, part)
    listed = page.locator("table tr", has=page.locator("td"))
    expect(listed).to_have_count(min(expected, 50))
    for name in listed.locator("td:nth-child(2)").all_inner_texts():
        assert part in name
    journey.snap("statuschange_search_by_name")
    listed.first.get_by_role("link", name="选择").click()
    expect(page.locator("#change-types")).to_be_visible()

    # back to the graduating pupil by name and 学籍号 together on the list, then 休学
    find_student(page, pupil.name)
    if page.locator("#change-types").count() == 0:          # namesakes: choose by 学籍号
        page.locator("tr", has_text=pupil.xjh).get_by_role("link", name="选择").click()
    expect(page.locator("h4:has(small)")).to_contain_text(pupil.xjh)
    rid = file_suspension(page, pupil)
    expect(page.locator("body")).to_contain_text("医院证明.png")

    (req,) = query(live_app, select(Request.kind, Request.subtype, Request.state, Request.student_id,
                                    Request.student_lock).where(Request.id == rid))
    assert (req.kind, req.subtype, req.state, req.student_id) == ("status_change", "休学", "审核中", pupil.id)
    assert req.student_lock is not None                     # 在办业务: the student is locked until it ends
    assert query(live_app, select(Student.status).where(Student.id == pupil.id))[0][0] == "在校"


# --- 学生照片 and 学籍卡 -----------------------------------------------------------------------------------------

def test_student_photo_and_card(live_app, journey):
    """The registrar opens a student from the 学生学籍 list, uploads a JPEG photo (cropped to 13:16 and kept at
    390×480), then prints the 学籍卡: the photo in its box, the seal area, the signing lines and her own name."""
    from PIL import Image
    from models import Student, XuejiUser
    pupil = graduating(live_app, A1, offset=1)
    (clerk,) = query(live_app, select(XuejiUser.last_name, XuejiUser.first_name).where(
        XuejiUser.username == "school_a1_clerk"))

    page = journey.login("school_a1_clerk")
    menu(page, "学籍管理", "学生学籍")
    page.locator("tr", has_text=pupil.xjh).locator('a[href*="/student/show/"]').first.click()
    expect(page.locator("body")).to_contain_text(pupil.name)
    expect(page.locator(".xueji-photo-none")).to_have_text("无照片")
    expect(page.locator(".xueji-photo .help-block")).to_contain_text("JPG或PNG")
    photo = jpeg_bytes(600, 800)                                  # 3:4, wider than 13:16: cropped at the sides
    page.locator("#photo-file").set_input_files({"name": "证件照.jpg", "mimeType": "image/jpeg", "buffer": photo})
    page.get_by_role("button", name="上传照片").click()
    expect(page.locator("body")).to_contain_text("照片已保存（已按26×32毫米比例裁剪）")
    img = page.locator(".xueji-photo img")
    expect(img).to_be_visible()
    page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=img.element_handle())
    assert img.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [390, 480]
    expect(page.get_by_role("button", name="更换照片")).to_be_visible()
    assert_clean(page)
    journey.snap("student_photo")

    (stored,) = query(live_app, select(Student.photo).where(Student.id == pupil.id))
    assert re.fullmatch(r"[0-9a-f]{32}\.jpg", stored[0])
    path = os.path.join(live_app.config["UPLOAD_FOLDER"], "photos", stored[0])
    with Image.open(path) as saved:
        assert (saved.format, saved.size) == ("JPEG", (390, 480))

    with page.context.expect_page() as popup:                     # 打印学籍卡 opens in a new tab
        page.get_by_role("link", name="打印学籍卡").click()
    card = popup.value
    card.wait_for_load_state()
    expect(card.locator("h1")).to_have_text("学生学籍卡")
    box = card.locator(".photo img")
    card.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=box.element_handle())
    assert box.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [390, 480]
    size = card.locator(".photo").evaluate("e => [e.getBoundingClientRect().width, e.getBoundingClientRect().height]")
    assert abs(size[0] / size[1] - 26 / 32) < 0.01                # the 26×32 mm box
    expect(card.locator(".seal")).to_have_text("学校（盖章）")
    expect(card.locator(".sign")).to_contain_text("经办人（签字）")
    expect(card.locator(".sign")).to_contain_text("郑州市中原区第一初级中学")
    expect(card.locator("body")).to_contain_text(f"打印人：{clerk.last_name}{clerk.first_name}")
    expect(card.locator("body")).to_contain_text(pupil.xjh)
    expect(card.locator("body")).to_contain_text("打印时间：2026-11-20 10:00")
    assert_clean(card)
    journey.snap("student_card", card)
    card.close()


# --- 毕业升级 ------------------------------------------------------------------------------------------------------

def test_graduation_season(live_app, journey):
    """The county opens its graduation season in 参数设置; the 初中 registrar sees the graduating grade by class with
    the blocked student first and why, and confirms the named numbers; the 高中 files its graduation and the county
    reviewer approves it from 毕业审核; the county clerk clears the blocking 在办业务, is refused 升级 while one
    student has not graduated, runs it once all have, and rolls two graduates back."""
    from models import Setting, Student
    from models.requests import Request
    blocked = graduating(live_app, A1)
    a1, a2 = school_id(live_app, A1), school_id(live_app, A2)
    grade = {sid: query(live_app, select(Student.id, Student.class_id).where(
        Student.school_id == sid, Student.cohort_year == 2024, Student.status == "在校"))
        for sid in (a1, a2)}
    assert len(grade[a1]) == 8 and len(grade[a2]) == 8

    # the 在办业务 that blocks one graduate: the 休学 of the 学籍异动 journey, filed here when run alone
    page = journey.login("school_a1_clerk")
    if open_request_of(live_app, blocked.id) is None:
        page.goto(f"/statuschange/?student_id={blocked.id}")
        file_suspension(page, blocked)
    held = open_request_of(live_app, blocked.id)

    # 毕业 before the season: the page says so and offers no button
    menu(page, "学籍管理", "毕业升级")
    expect(page.locator("#window-closed")).to_contain_text("今天不在毕业办理期间（6月1日至7月30日）")
    expect(page.get_by_role("button", name="确认办理毕业")).to_be_disabled()

    # the county moves its season in 参数设置, like a clerk would
    page = journey.login("county_a_clerk")
    menu(page, "学校管理", "参数设置")
    row = page.locator('#settings-overview tr[data-key="calendar.graduation_window"]')
    expect(row).to_contain_text("只在此期间办理毕业。")
    expect(row.locator("td").nth(4)).to_have_text("全国默认")
    row.get_by_role("link", name="设置").click()
    expect(page.locator("#key")).to_have_value("calendar.graduation_window")
    expect(page.locator("#region_code")).to_have_value("410102")
    page.fill("#value", SEASON)
    page.fill("#note", "本区县今年毕业办理推迟到11月至12月")
    page.get_by_role("button", name="保存").click()
    expect(page.locator("body")).to_contain_text("记录已添加")
    assert query(live_app, select(Setting.value).where(Setting.key == "calendar.graduation_window",
                                                       Setting.region_code == "410102"))[0][0] == SEASON
    menu(page, "学校管理", "参数设置")
    expect(row.locator("td").nth(4)).to_have_text("区县")
    expect(row).to_contain_text("本区县今年毕业办理推迟到11月至12月")

    # the 初中: preview by class, the blocked student first with the reason, the confirmation names the numbers
    page = journey.login("school_a1_clerk")
    menu(page, "学籍管理", "毕业升级")
    expect(page.locator("h3")).to_have_text("毕业：郑州市中原区第一初级中学 2024级（初中毕业年级，2026学年）")
    expect(page.locator("body")).to_contain_text("毕业办理期间：11月1日至12月31日。")
    expect(page.locator("#window-closed")).to_have_count(0)
    expect(page.locator("#blocked")).to_have_text("暂不能办理 1 人")
    blocked_rows = page.locator("tr.blocked-row")
    expect(blocked_rows).to_have_count(1)
    expect(blocked_rows).to_contain_text(blocked.name)
    expect(blocked_rows).to_contain_text("不能办理：有在办业务")
    counts = page.locator("#by-class tr.class-count")
    expect(counts).to_have_count(2)
    expect(counts.nth(0)).to_have_text(re.compile(r"1班\s*3\s*1\s*4"))     # 可办理, 暂不能办理, 合计
    expect(counts.nth(1)).to_have_text(re.compile(r"2班\s*4\s*0\s*4"))
    first_class = page.locator("h5.class-head").first.locator("xpath=following-sibling::table[1]")
    expect(first_class.locator("tr").nth(1)).to_have_class(re.compile("danger"))     # blocked first in the class
    expect(first_class.locator("tr").nth(1)).to_contain_text(blocked.xjh)
    expect(page.locator("#confirm-bar")).to_contain_text("共 2 个班，可办理毕业 7 人，暂不能办理 1 人")
    assert_clean(page)
    journey.snap("graduation_preview")
    asked = []
    page.once("dialog", lambda d: (asked.append(d.message), d.accept()))
    page.get_by_role("button", name="确认办理毕业").click()
    expect(page.locator("body")).to_contain_text("已为7名学生办理毕业")
    assert asked == ["将为2个班共7名学生办理毕业，1名学生因有在办业务不能毕业。确定吗？"]
    done = query(live_app, select(Student.id, Student.status, Student.cert_no, Student.graduated_on).where(
        Student.id.in_([s.id for s in grade[a1]])))
    graduated = {d.id: d for d in done if d.status == "毕业"}
    assert set(graduated) == {s.id for s in grade[a1]} - {blocked.id}
    assert all(d.graduated_on == date(2026, 11, 20) and re.fullmatch(r"41010200012026\d{4}", d.cert_no)
               for d in graduated.values())
    assert [d.status for d in done if d.id == blocked.id] == ["在校"]

    # the 高中: its graduation is a request to the county
    page = journey.login("school_a2_clerk")
    menu(page, "学籍管理", "毕业升级")
    expect(page.locator("h3")).to_contain_text("郑州市中原区实验高级中学 2024级（高中毕业年级，2026学年）")
    expect(page.locator("body")).to_contain_text("高中毕业须经区县教育局审核。")
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="提交毕业申请").click()
    expect(page.locator("body")).to_contain_text("已提交8名学生的毕业申请，等待区县教育局审核")
    (grad_req,) = query(live_app, select(Request.id, Request.state).where(Request.kind == "graduation",
                                                                           Request.school_id == a2))
    assert grad_req.state == "审核中"

    # the county reviewer: 毕业升级 → 毕业审核, open it, approve
    page = journey.login("county_a_reviewer")
    menu(page, "毕业升级", "毕业审核")
    waiting = page.locator("table.table-bordered tbody tr")
    expect(waiting).to_have_count(1)
    expect(waiting).to_contain_text("高中毕业（2024级，8人）")
    assert_clean(page)
    journey.snap("graduation_review")
    waiting.locator(f'a[href="/request/show/{grad_req.id}"]').first.click()
    page.locator("textarea[name=comment]").fill("同意毕业")
    page.get_by_role("button", name="通过", exact=True).click()
    expect(page.locator("h3 .label")).to_have_text("已通过")
    assert {s for (s,) in query(live_app, select(Student.status).where(
        Student.id.in_([s.id for s in grade[a2]])))} == {"毕业"}

    # the county clerk: 在办业务清理 — from the menu it explains where to choose, then from the request list
    page = journey.login("county_a_clerk")
    menu(page, "毕业升级", "在办业务清理")
    expect(page.locator("h3")).to_have_text("在办业务清理")
    expect(page.locator("#clear-empty")).to_contain_text("未选择要清理的在办业务")
    journey.snap("clear_empty")
    page.locator("#clear-empty a").click()
    page.get_by_role("button", name="操作").click()             # nothing ticked yet: told so, in Chinese
    page.locator(".clear_menu_item").click()
    expect(page.locator("#modal-alert .modal-text")).to_have_text("请先勾选要操作的记录")
    assert_clean(page)
    page.locator("#modal-alert").get_by_role("button", name="确定").click()
    expect(page.locator("#modal-alert")).to_be_hidden()
    row = page.locator("table.table-bordered tbody tr", has=page.locator(f'a[href="/request/show/{held}"]'))
    row.locator("input[name=rowid]").check()
    page.get_by_role("button", name="操作").click()
    page.locator(".clear_menu_item").click()
    expect(page.locator("h3")).to_have_text("在办业务清理")
    chosen = page.locator("form table tr", has=page.locator("input[name=ids]"))
    expect(chosen).to_have_count(1)
    expect(chosen).to_contain_text("休学")
    expect(chosen).to_contain_text("审核中")
    page.locator("textarea[name=reason]").fill("毕业年级在办业务统一清理")
    assert_clean(page)
    journey.snap("clear")
    page.get_by_role("button", name="确认清理").click()
    expect(page.locator("body")).to_contain_text("已清理1项在办业务")
    assert query(live_app, select(Request.state, Request.student_lock).where(Request.id == held))[0] == ("已清理",
                                                                                                        None)

    # 升级 while the unblocked student has not graduated: refused, with the count
    menu(page, "毕业升级", "升级")
    expect(page.locator("h3")).to_have_text("升级：2026 → 2027 学年")
    expect(page.locator("tr.danger")).to_contain_text("2024级")
    page.get_by_role("button", name="升级到 2027 学年").click()
    expect(page.locator("body")).to_contain_text("毕业年级还有1名在校学生未办理毕业")
    assert not query(live_app, select(Setting.value).where(Setting.key == "calendar.school_year",
                                                           Setting.region_code == "410102"))

    page = journey.login("school_a1_clerk")
    menu(page, "学籍管理", "毕业升级")
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="确认办理毕业").click()
    expect(page.locator("body")).to_contain_text("已为1名学生办理毕业")

    page = journey.login("county_a_clerk")
    menu(page, "毕业升级", "升级")
    expect(page.locator("tr.danger")).to_have_count(0)
    assert_clean(page)
    journey.snap("promote")
    page.get_by_role("button", name="升级到 2027 学年").click()
    expect(page.locator("body")).to_contain_text("已升级到新学年")
    expect(page.locator("h3")).to_have_text("升级：2027 → 2028 学年")
    assert query(live_app, select(Setting.value).where(Setting.key == "calendar.school_year",
                                                       Setting.region_code == "410102"))[0][0] == "2027"

    # 毕业生回退: find this year's graduates of the 初中, choose two, give the reason, confirm
    menu(page, "毕业升级", "毕业生回退")
    page.locator("select[name=school_id]").select_option(str(a1))
    page.locator("input[name=year]").fill("2026")
    page.get_by_role("button", name="查找").click()
    found = page.locator("form[method=post] table tr", has=page.locator("input[name=ids]"))
    expect(found).to_have_count(8)
    for r in found.all():
        expect(r).to_contain_text("郑州市中原区第一初级中学")
        expect(r).to_contain_text("2026-11-20")
    back = [graduated_id for graduated_id in sorted(graduated)][:2]
    for sid in back:
        page.locator(f"input[name=ids][value='{sid}']").check()
    page.locator("textarea[name=reason]").fill("学生家长申请复读，经核实毕业办理有误")
    assert_clean(page)
    journey.snap("graduate_rollback")
    asked = []
    page.once("dialog", lambda d: (asked.append(d.message), d.accept()))
    page.get_by_role("button", name="确认回退").click()
    expect(page.locator("body")).to_contain_text("已回退2名毕业生")
    assert asked == ["确定回退所选毕业生吗？回退后恢复为在校，毕业证号作废。"]
    after = query(live_app, select(Student.id, Student.status, Student.cert_no, Student.graduated_on).where(
        Student.id.in_(back)))
    assert {(a.status, a.cert_no, a.graduated_on) for a in after} == {("在校", None, None)}


# --- 参数设置 and 学籍统计 ------------------------------------------------------------------------------------------

def test_settings_overview_and_statistics(live_app, journey):
    """The county clerk reads 参数设置 (every setting: meaning, national default, the value in force here and who
    set it), then filters 学籍统计 by school and year and sees the charts, and "暂无数据" where there is nothing."""
    from app import settings
    from models import School
    page = journey.login("county_a_clerk")
    menu(page, "学校管理", "参数设置")
    expect(page.locator("h3")).to_have_text("参数设置")
    expect(page.locator("body")).to_contain_text("本页显示的现行值适用于：中原区")
    head = page.locator("#settings-overview tr").first.locator("th").all_inner_texts()
    assert [h.strip() for h in head][:5] == ["参数", "含义", "全国默认", "现行值", "设置级别"]
    rows = page.locator("#settings-overview tr[data-key]")
    keys = rows.evaluate_all("rows => rows.map(r => r.getAttribute('data-key'))")
    assert sorted(keys) == sorted(settings.DEFAULTS)                 # every setting, once
    for key in settings.DEFAULTS:
        cells = rows.filter(has=page.locator(f'td:first-child code:text-is("{key}")')).locator("td")
        expect(cells.nth(1)).to_have_text(settings.MEANINGS[key])
        assert cells.nth(2).inner_text().strip(), key                  # the national default, in words
        assert cells.nth(3).inner_text().strip(), key                  # the value in force
        expect(cells.nth(4)).to_have_text(re.compile("^(全国默认|全系统|省级|市级|区县)$"))
    cap = rows.filter(has=page.locator('code:text-is("class_cap.初中")')).locator("td")
    expect(cap.nth(2)).to_contain_text("50")
    assert_clean(page)
    journey.snap("settings_overview")

    a1 = query(live_app, select(School.id, School.name).where(School.code == A1))[0]
    menu(page, "学籍管理", "学籍统计")
    expect(page.locator("h3")).to_have_text("学籍统计")
    expect(page.locator("#filter-school option")).to_have_text(["全部学校", "郑州市中原区第一初级中学",
                                                                "郑州市中原区实验高级中学"])
    page.locator("#filter-school").select_option(str(a1.id))
    page.locator("#filter-year").select_option("2025")
    page.get_by_role("button", name="筛选").click()
    page.wait_for_url(re.compile(rf"school={a1.id}.*year=2025|year=2025.*school={a1.id}"))
    expect(page.locator("#filter-school")).to_have_value(str(a1.id))
    expect(page.locator("#filter-year")).to_have_value("2025")
    overview = page.locator("#table-overview")
    expect(overview).to_contain_text(a1.name)
    expect(overview).not_to_contain_text("实验高级中学")
    # nothing approved in 2025: the 异动 chart says so instead of drawing bare axes, and so does its table
    expect(page.locator("#chart-changes")).to_have_attribute("data-empty", "1")
    page.wait_for_function("""() => { const c = document.querySelector('#chart-changes canvas');
                                      return c && c.width > 0; }""")
    expect(page.locator("#table-changes")).to_contain_text("暂无数据")
    expect(page.locator("h4", has_text="学籍异动")).to_contain_text("（2025年）")
    canvas = page.locator("#chart-grades canvas")                 # the school's grades are drawn
    page.wait_for_function(
        """c => { const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
                  let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n > 500; }""",
        arg=canvas.element_handle())
    expect(page.locator("#chart-grades")).not_to_have_attribute("data-empty", "1")
    assert_clean(page)
    page.wait_for_timeout(1200)              # ECharts grows its bars for a second: the screenshot shows them drawn
    journey.snap("statistics_filtered")


# --- 用户权限 (superadmin) -----------------------------------------------------------------------------------------

def test_superadmin_roles_and_user_form(live_app, journey):
    """The superadmin reads a role's permissions in words (查看/新增/编辑/删除 and the screen's Chinese name) and
    adds a county account with the user form, whose hints are all Chinese."""
    from models import XuejiUser
    page = journey.login("admin")
    menu(page, "用户权限", "角色列表")
    expect(page.locator("body")).to_contain_text("记录数目")
    role = page.locator("table.table-bordered tbody tr", has_text="系统管理员")
    role.locator('a[href*="/roles/show/"]').first.click()
    words = page.locator("tr", has=page.locator("th", has_text="权限")).locator("td")
    for shown in ("查看学生学籍", "新增角色", "编辑学生学籍", "删除学生学籍", "查看学籍统计", "菜单：学籍管理", "复制角色",
                  "办理毕业"):
        expect(words).to_contain_text(shown)
    text = words.inner_text()
    assert "can read on" not in text and "can_" not in text
    assert_clean(page)
    journey.snap("role_permissions")
    menu(page, "用户权限", "角色列表")                             # its form: still FAB's words (KNOWN)
    role.locator('a[href*="/roles/edit/"]').first.click()
    expect(page.locator(".panel-title").first).to_contain_text("编辑角色")
    assert_clean(page)
    journey.snap("role_edit")

    menu(page, "用户权限", "用户列表")
    page.locator('a[href^="/users/add"]').first.click()
    expect(page.locator(".panel-title").first).to_contain_text("新增账号")
    hints = {h.strip() for h in page.locator("span.help-block").all_inner_texts() if h.strip()}
    assert "登录用的用户名，建议用拼音或工号，创建后不要修改" in hints
    assert "登录用的密码：至少8位，且须包含大写字母、小写字母、数字、符号中的至少三类" in hints
    assert all(re.search(r"[\u4e00-\u9fff]", h) for h in hints), hints      # every hint in Chinese
    assert_clean(page)
    journey.snap("user_add")
    page.fill("#username", "county_a_reviewer2")
    page.fill("#last_name", "赵")
    page.fill("#first_name", "审核")
    page.fill("#email", "county_a_reviewer2@xueji.example")
    pick(page, "region", "中原区")
    pick(page, "roles", "教育局审核")
    page.fill("#phone", "13912345678")
    page.fill("#password", "Shenhe#2026")
    page.fill("#conf_password", "Shenhe#2026")
    page.get_by_role("button", name="保存").click()
    expect(page.locator("body")).to_contain_text("记录已添加")
    # back on the list: an action that asks first asks in Chinese (FAB's box says "Cancel" and "OK")
    page.locator("table.table-bordered tbody tr", has_text="county_a_reviewer2").locator("input[name=rowid]").check()
    page.get_by_role("button", name="操作").click()
    page.locator(".unlock_menu_item").click()
    box = page.locator("#modal-confirm")
    expect(box).to_be_visible()
    expect(box.locator(".modal-title")).to_have_text("请确认")
    expect(box.locator(".modal-footer")).to_have_text(re.compile(r"^\s*取消\s*确定\s*$"))
    assert_clean(page)
    journey.snap("user_list_confirm")
    box.get_by_role("button", name="取消").click()
    expect(box).to_be_hidden()
    (user,) = query(live_app, select(XuejiUser.region_code, XuejiUser.school_id, XuejiUser.must_change_password,
                                     XuejiUser.phone).where(XuejiUser.username == "county_a_reviewer2"))
    assert tuple(user) == ("410102", None, True, "13912345678")

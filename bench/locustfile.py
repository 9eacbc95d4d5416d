"""Load model for `make load` (bench/load.py runs it headless against gunicorn).

Three kinds of users, all signed in through the real /login/ form (CSRF token taken from the page):

- SchoolRegistrar (学校学籍管理员): the 待办 home page, the student list with filters and pages, name search,
  student pages (ids taken from the list just shown), the request list and request pages, the 问题学籍 queue.
- Reviewer (学校学籍主管领导 / 教育局审核): opens the 待办 home page, opens a request waiting at their step and
  approves it through the real form post to /request/decide/<id> (csrf_token from the request page).
- BureauUser (教育局经办, county / city / province accounts): region-wide student list with filters, name search,
  综合查询, 异动查询, 学籍统计.

Accounts and filter values come from LOAD_ACCOUNTS (a JSON file written by bench/load.py from the database);
without it the demo accounts are used. LOAD_WAIT="min,max" sets the think time in seconds (default 2,8).

Several servers (bench/load.py --profile cluster): LOAD_HOSTS="http://127.0.0.1:8001,http://127.0.0.1:8002" lists
them; each simulated user takes the next one in turn when it starts and keeps it (as a load balancer would; --host
is then only the first). A reviewer who has just approved opens the request once more on another server, with the
same session cookie: it must show the request decided (the session, signed with the shared SECRET_KEY, carries the
user's write position, so that server reads it from a replica that has replayed it, or from the primary).

When the run ends, LOAD_OUTCOMES (JSON) receives the outcomes of approvals (approved / lost a race to another
reviewer / nothing waiting), of those checks on another server ("crosscheck": fresh / stale), and every request's
timing (start, name, method, ms, failed, index of the server in LOAD_HOSTS), so the runner computes exact
percentiles (locust's own are rounded) and can leave the login burst out of the steady-state figures.
"""
import html
import json
import os
import random
import re
import time
from collections import Counter
from datetime import date
from urllib.parse import urlsplit

from locust import HttpUser, between, events, task

PASSWORD = os.environ.get("LOAD_PASSWORD", "Xueji#2026")
_today = date.today()
_year = _today.year if _today.month >= 9 else _today.year - 1
DEMO = {
    "registrar": [{"username": f"school_{s}_clerk", "schools": []} for s in ("a1", "a2", "b1", "b2")],
    "school_reviewer": [{"username": f"school_{s}_leader", "schools": []} for s in ("a1", "a2", "b1", "b2")],
    "county_reviewer": [{"username": f"county_{c}_reviewer", "schools": []} for c in ("a", "b")],
    "bureau": [{"username": f"county_{c}_clerk", "schools": []} for c in ("a", "b")],
    "cohorts": [_year - 2, _year - 1, _year],
}


def _load_accounts():
    path = os.environ.get("LOAD_ACCOUNTS")
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    return DEMO


ACCOUNTS = _load_accounts()
COHORTS = ACCOUNTS.get("cohorts") or DEMO["cohorts"]
# Name searches as registrars type them: a common surname, or surname + one given-name character.
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰"
OUTCOMES = Counter()
CROSSCHECK = Counter()          # read-after-write on another server: fresh / stale / other
TIMINGS = []
HOSTS = [h.strip().rstrip("/") for h in os.environ.get("LOAD_HOSTS", "").split(",") if h.strip()]
SERVER_OF = {urlsplit(h).netloc: i for i, h in enumerate(HOSTS)}

CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
STUDENT_RE = re.compile(r'href="/student/show/(\d+)"')
REQUEST_RE = re.compile(r'href="/request/show/(\d+)"')
DECIDE_RE = re.compile(r'action="/request/decide/(\d+)"')
STEP_RE = re.compile(r'name="step" value="(\d+)"')
EXPORT_RE = re.compile(r"/exportjob/show/(\d+)")
ALERT_RE = re.compile(r'<div class="alert[^"]*"[^>]*>(.*?)</div>', re.S)


def refusal(text: str) -> str:
    """The message the page shows (its flashed alert), so a refused decision is counted by its reason."""
    found = ALERT_RE.search(text or "")
    words = re.sub(r"<[^>]+>|×", " ", found.group(1)) if found else "no message"
    return " ".join(words.split())[:120]


def _wait():
    lo, hi = (float(x) for x in os.environ.get("LOAD_WAIT", "2,8").split(","))
    return between(lo, hi)


class XuejiUser(HttpUser):
    abstract = True
    wait_time = _wait()
    pool = "registrar"
    _next = Counter()            # round-robin over the accounts of each pool
    _started = 0                 # round-robin over the servers (LOAD_HOSTS)

    def on_start(self):
        if HOSTS:
            self.server = XuejiUser._started % len(HOSTS)
            XuejiUser._started += 1
            self.client.base_url = HOSTS[self.server]
        accounts = []
        for pool in self.pool.split("+"):
            accounts += ACCOUNTS.get(pool) or []
        n = XuejiUser._next[self.pool]
        XuejiUser._next[self.pool] += 1
        self.account = accounts[n % len(accounts)]
        self.student_ids = []
        self.login()

    def login(self):
        page = self.client.get("/login/", name="/login/ [form]")
        token = CSRF_RE.search(page.text)
        with self.client.post("/login/", name="/login/ [post]", catch_response=True, allow_redirects=True,
                              data={"username": self.account["username"], "password": PASSWORD,
                                    "csrf_token": token.group(1) if token else ""}) as resp:
            if resp.status_code != 200 or resp.url.rstrip("/").endswith("/login"):
                resp.failure(f"login of {self.account['username']} failed ({resp.status_code})")

    def get(self, url, name, **kw):
        """GET that counts a bounce to the login page (an expired or lost session) as a failure."""
        with self.client.get(url, name=name, catch_response=True, **kw) as resp:
            if resp.status_code == 200 and "/login/" in resp.url:
                resp.failure("redirected to login")
            return resp

    def other_server(self):
        """Another server than this user's, or None with one server."""
        if len(HOSTS) < 2:
            return None
        return HOSTS[(self.server + 1) % len(HOSTS)]

    def remember_students(self, page):
        ids = STUDENT_RE.findall(page.text or "")
        if ids:
            self.student_ids = ids

    def school_filter(self):
        schools = self.account.get("schools") or []
        return f"&_flt_0_school={random.choice(schools)}" if schools else ""


class SchoolRegistrar(XuejiUser):
    """学校学籍管理员 of one school: browses, searches and opens records of the school."""
    weight = 6
    pool = "registrar"

    @task(2)
    def home(self):
        self.get("/", name="/ [待办]")

    @task(4)
    def student_list(self):
        cohort = random.choice(COHORTS)
        page = random.choice((0, 0, 0, 1, 2))
        self.remember_students(self.get(
            f"/student/list/?_flt_0_cohort_year={cohort}&_flt_3_status=在校&page_StudentView={page}",
            name="/student/list/ [grade+status]"))

    @task(1)
    def student_list_plain(self):
        self.remember_students(self.get("/student/list/", name="/student/list/"))

    @task(3)
    def name_search(self):
        term = random.choice(SURNAMES) + (random.choice(GIVEN) if random.random() < 0.5 else "")
        self.remember_students(self.get(f"/student/list/?_flt_2_name={term}", name="/student/list/ [name]"))

    @task(4)
    def student_page(self):
        if not self.student_ids:
            return self.student_list()
        self.get(f"/student/show/{random.choice(self.student_ids)}", name="/student/show/<id>")

    @task(1)
    def requests(self):
        page = self.get("/request/list/", name="/request/list/")
        ids = REQUEST_RE.findall(page.text or "")
        if ids:
            self.get(f"/request/show/{random.choice(ids[:10])}", name="/request/show/<id>")

    @task(1)
    def problems(self):
        self.get("/problem/list/", name="/problem/list/")

    @task(1)
    def export_grade(self):
        """导出 Excel of one grade (a few hundred rows): a background job (on the queue worker in the cluster
        profile, a thread of the web worker otherwise), its progress polled as the progress page does, then the
        file downloaded (from the file store: the database in the cluster profile, so from either server)."""
        query = f"_flt_0_cohort_year={random.choice(COHORTS)}&_flt_3_status=在校"
        page = self.get(f"/student/list/?{query}", name="/student/list/ [grade+status]")
        token = CSRF_RE.search(page.text or "")
        with self.client.post(f"/student/export/xlsx?{query}", name="/student/export/xlsx [grade]",
                              catch_response=True, allow_redirects=False,
                              data={"csrf_token": token.group(1) if token else ""}) as resp:
            started = EXPORT_RE.search(resp.headers.get("Location", ""))
            if resp.status_code != 302:
                resp.failure(f"export answered {resp.status_code}")
                return
            if not started:                 # refused with a message (this account's exports already running)
                OUTCOMES["export refused (busy)"] += 1
                return
        deadline = time.time() + 60
        while time.time() < deadline:
            status = self.get(f"/exportjob/status/{started.group(1)}", name="/exportjob/status/<id>")
            body = status.json() if status.status_code == 200 and "json" in status.headers.get("Content-Type", "") \
                else {}
            if body.get("state") == "done":
                self.get(body["download"], name="/exportjob/file/<id>")
                OUTCOMES["export done"] += 1
                return
            if body.get("state") == "failed":
                OUTCOMES["export failed"] += 1
                return
            time.sleep(1)
        OUTCOMES["export not done in 60 s"] += 1


class Reviewer(XuejiUser):
    """学校学籍主管领导 and 区县教育局审核: approve what waits at their step, through the form on the request page."""
    weight = 2
    pool = "school_reviewer+county_reviewer"

    @task(5)
    def approve_one(self):
        home = self.get("/", name="/ [待办]")
        waiting = REQUEST_RE.findall(home.text or "")
        if not waiting:
            OUTCOMES["nothing waiting"] += 1
            return
        pk = random.choice(waiting[:20])        # several reviewers share an account: spread their picks
        page = self.get(f"/request/show/{pk}", name="/request/show/<id>")
        token, form = CSRF_RE.search(page.text or ""), DECIDE_RE.search(page.text or "")
        step = STEP_RE.search(page.text or "")
        if not form:
            OUTCOMES["already decided (page without form)"] += 1
            return
        with self.client.post(f"/request/decide/{pk}", name="/request/decide/<id> [通过]", catch_response=True,
                              data={"csrf_token": token.group(1) if token else "", "decision": "通过",
                                    "comment": "同意", "step": step.group(1) if step else ""}) as resp:
            text = html.unescape(resp.text or "")
            if resp.status_code != 200:
                resp.failure(f"decide answered {resp.status_code}")
            elif "已办理" in text:
                OUTCOMES["approved"] += 1
                self.read_after_write(pk)
            elif "已被他人处理" in text or "不能审核" in text:
                OUTCOMES["lost the race (another reviewer decided first)"] += 1
            else:
                OUTCOMES[f"refused ({refusal(text)})"] += 1
                resp.failure(f"decision refused: {refusal(text)}")

    def read_after_write(self, pk):
        """The decision just made, seen through another server: the page must no longer offer 通过 for it."""
        other = self.other_server()
        if other is None:
            return
        with self.client.get(f"{other}/request/show/{pk}", name="/request/show/<id> [other server, after 通过]",
                             catch_response=True) as resp:
            if resp.status_code != 200 or "/login/" in resp.url:
                CROSSCHECK["other"] += 1
                resp.failure(f"other server answered {resp.status_code} ({resp.url})")
            elif any(found == str(pk) for found in DECIDE_RE.findall(resp.text or "")):
                CROSSCHECK["stale"] += 1
                resp.failure("read-after-write: the other server still offers 通过 for a request just decided")
            else:
                CROSSCHECK["fresh"] += 1

    @task(1)
    def request_list(self):
        self.get("/request/list/", name="/request/list/")


class BureauUser(XuejiUser):
    """区县 / 地市 / 省 教育局经办: region-wide lists, searches, queries and statistics."""
    weight = 2
    pool = "bureau"

    @task(2)
    def home(self):
        self.get("/", name="/ [待办]")

    @task(4)
    def student_list(self):
        cohort = random.choice(COHORTS)
        self.remember_students(self.get(
            f"/student/list/?_flt_0_cohort_year={cohort}&_flt_3_status=在校{self.school_filter()}",
            name="/student/list/ [school+grade+status]"))

    @task(3)
    def name_search(self):
        term = random.choice(SURNAMES) + random.choice(GIVEN)
        self.remember_students(self.get(f"/student/list/?_flt_2_name={term}&_flt_3_status=在校",
                                        name="/student/list/ [name]"))

    @task(2)
    def student_page(self):
        if not self.student_ids:
            return self.student_list()
        self.get(f"/student/show/{random.choice(self.student_ids)}", name="/student/show/<id>")

    @task(2)
    def current_students(self):
        self.get(f"/query/current/list/?_flt_0_cohort_year={random.choice(COHORTS)}{self.school_filter()}",
                 name="/query/current/list/ [在校生查询]")

    @task(1)
    def changes(self):
        self.get("/query/changes/list/", name="/query/changes/list/ [异动查询]")

    @task(1)
    def statistics(self):
        self.get("/statistics/", name="/statistics/")


@events.request.add_listener
def _timing(request_type, name, response_time, response_length, exception=None, start_time=None, url=None,
            **_kw):
    TIMINGS.append((round(start_time or time.time(), 3), name, request_type, round(response_time, 1),
                    exception is not None, SERVER_OF.get(urlsplit(url or "").netloc, 0)))


@events.quitting.add_listener
def _write_outcomes(environment, **_kw):
    path = os.environ.get("LOAD_OUTCOMES")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"outcomes": dict(OUTCOMES), "crosscheck": dict(CROSSCHECK), "timings": TIMINGS}, f,
                      ensure_ascii=False)

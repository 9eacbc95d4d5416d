"""The web routes' net beside schemathesis (which covers the REST API): every GET and POST rule of the app's url_map,
as each role, with hostile path parameters, query parameters and form fields (negative, non-numeric and
out-of-range numbers, NUL bytes, lone surrogates sent as the UTF-8 bytes a client would send, very long strings,
rison garbage). No answer may be a server error. Derandomised (a fixed seed) and sampled, so it stays fast."""
import random
import re
from urllib.parse import quote

import pytest

from app import exportjobs
from tests.conftest import api_headers

ROLES = ["admin", "county_a_clerk", "county_a_reviewer", "school_a1_clerk", "school_a1_leader"]
SKIP_ENDPOINTS = {"static", "appbuilder.static", "XuejiAuthDBView.logout", "XuejiAuthDBView.login",
                  "LocaleView.index",           # switches the session's language: nothing to fuzz
                  "RateLimitedSecurityApi.login", "RateLimitedSecurityApi.refresh",   # sign-in throttling
                  "AccountApi.change_password", "XuejiResetMyPasswordView.this_form_post"}   # own password
LONG = "长" * 3000 + "x" * 5000
HOSTILE = ["-5", "abc", "2147483648", "99999999999999999999", "a\x00b", "ok\ud800", LONG, "1e", "(((", "!(",
           "(a:!(b", "'; --", "0", ""]
# parameters the views read (request.args / request.form / request.values), besides those scraped from forms
KNOWN = ["q", "ids", "rowid", "school_id", "student_id", "class_id", "problem_id", "quota_id", "year", "to_year",
         "cohort_year", "classes", "page", "kind", "what", "decision", "comment", "action", "name", "xjh", "reason",
         "date", "stage", "type", "value", "requested", "confirm", "mode", "county_code", "province_code",
         "public_key", "username", "group_by"]
_FIELD = re.compile(r"""<(?:input|select|textarea)\b[^>]*\bname=["']([^"']+)["']""")
_ID_NAME = re.compile(r"^(id|ids|pk|rowid|.+_id|.+_ids)$")


def _raw(value: str) -> str:
    """Percent-encoded as a client sends it: a lone surrogate becomes the (invalid) UTF-8 bytes ED A0 80."""
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def _encode(params: dict) -> str:
    return "&".join(f"{_raw(k)}={_raw(v)}" for k, v in params.items())


def _url(rule, value: str) -> str:
    """The rule's path with every parameter set to ``value``."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: _raw(value), rule.rule)


def _rules(app):
    out = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint in SKIP_ENDPOINTS:
            continue
        for method in ("GET", "POST"):
            if method in rule.methods:
                out.append((rule, method))
    return out


def _list_params(rule) -> list[str]:
    """FAB list paging, ordering and filter arguments named after the view (page_StudentView, _flt_0_name …)."""
    view = rule.endpoint.split(".")[0]
    return [f"page_{view}", f"psize_{view}", f"_oc_{view}", f"_od_{view}", "_flt_0_name", "_flt_0_school",
            "_flt_1_id", "_flt_0_filed_at"]


_SCRAPED = {}


@pytest.fixture
def scraped(app, world, as_user):
    """Form field names per rule, read from the pages themselves (admin and a school registrar see most forms);
    once per app."""
    if id(app) in _SCRAPED:
        return _SCRAPED[id(app)]
    names = _SCRAPED[id(app)] = {}
    for username in ("admin", "school_a1_clerk"):
        client = as_user(username)
        for rule, method in _rules(app):
            if method != "GET" or rule.rule.startswith("/api/") or "export" in rule.rule or "download" in rule.rule:
                continue
            resp = client.get(_url(rule, "1"))
            if resp.status_code == 200 and resp.mimetype == "text/html":
                names.setdefault(rule.rule, set()).update(_FIELD.findall(resp.get_data(as_text=True)))
    return names


def _request(client, method, path, params, headers):
    if method == "GET":
        return client.get(path + ("?" + _encode(params) if params else ""), headers=headers)
    return client.post(path, data=_encode(params).encode(), headers=headers,
                       content_type="application/x-www-form-urlencoded")


@pytest.mark.parametrize("username", ROLES)
def test_no_web_route_answers_a_server_error(app, world, as_user, scraped, username):
    rng = random.Random(f"web-fuzz-{username}")          # derandomised: the same requests every run
    client = as_user(username)
    api = {"Authorization": api_headers(app.test_client(), username)["Authorization"]}
    failures, sent = [], 0
    for rule, method in _rules(app):
        headers = api if rule.rule.startswith("/api/") else {}
        names = sorted(set(KNOWN) | scraped.get(rule.rule, set()) | set(_list_params(rule)))
        plans = []
        if rule.arguments:
            plans.append((_url(rule, rng.choice(HOSTILE[:7])), {}))           # a hostile id in the path
            base = _url(rule, "1")                                            # an id that may exist
        else:
            base = rule.rule
        if rng.random() < 0.5:
            plans = plans[:1]           # each role fills in the forms of about half the rules (seeded per role)
            base = None
        for _ in range(1 if base else 0):
            # ids stay ids in one request so the view's own reading of the other fields is reached; the next
            # request makes the ids hostile too
            hostile_ids = rng.random() < 0.5
            params = {}
            for name in rng.sample(names, min(len(names), 12)):
                value = rng.choice(HOSTILE)
                params[name] = value if hostile_ids or not _ID_NAME.match(name) else "1"
            plans.append((base, params))
        for path, params in plans:
            sent += 1
            resp = _request(client, method, path, params, headers)
            for job_id in list(exportjobs._threads):      # a background export started: let it finish (SQLite)
                exportjobs.wait(job_id)
            if resp.status_code >= 500:
                failures.append(f"{resp.status_code} {method} {path[:80]} {sorted(params)[:6]}")
    assert sent > 200
    assert not failures, f"{len(failures)} server errors as {username}:\n" + "\n".join(failures[:40])

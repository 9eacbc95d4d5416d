"""Business-rule errors: one exception type with a stable code, a Chinese message and an HTTP status.

Views and APIs turn it into a flash / JSON answer; it never carries SQL text.
"""


class RuleError(Exception):
    status = 422

    def __init__(self, message: str, code: str = "rule", status: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        return self.message


class OutOfScope(RuleError):
    """A row outside the user's scope: answered as 404, as if it did not exist."""
    status = 404

    def __init__(self, message: str = "记录不存在或不在您的管辖范围内"):
        super().__init__(message, code="not_found", status=404)


def integrity_message(exc: Exception) -> str:
    """A Chinese message for a unique/foreign-key clash, naming the field when we can tell, never the SQL."""
    text = str(getattr(exc, "orig", exc)).lower()
    hints = [
        ("xjh", "学籍号"), ("id_number", "身份证件号"), ("username", "用户名"), ("email", "邮箱"),
        ("uq_class_number", "班号"), ("school.code", "学校标识码"), ("region.code", "行政区划代码"),
        ("code", "代码"),
    ]
    for key, label in hints:
        if key in text:
            if "foreign" in text:
                return f"{label}引用的记录不存在"
            return f"{label}与已有记录重复，请检查后再保存"
    if "foreign" in text:
        return "引用的记录不存在或仍被其他记录使用"
    return "数据与已有记录冲突（唯一性约束），请检查后再保存"


def json_error(status: int, code: str, message: str):
    """The API's error body: {"code": stable English code, "message": Chinese text}."""
    from flask import jsonify
    resp = jsonify(code=code, message=message)
    resp.status_code = status
    return resp


# --- what the client got wrong ----------------------------------------------------------------------
# Every route, web and API, gets the same refusal for hostile input *before* the view runs (check_request, a
# before_request hook), so no view needs its own guard against it: 413 for a body over MAX_CONTENT_LENGTH (before
# it is read), 404 for a path id that cannot exist (beyond the INTEGER columns of PostgreSQL and MariaDB), 400 for
# NUL bytes and lone surrogates anywhere, malformed paging or id parameters, malformed rison, JSON that is not
# JSON, nested beyond MAX_JSON_DEPTH or not an object; 422 for a JSON id field that is no id. Whatever still
# reaches the database and is refused there as the value's fault (DataError: out of range, too long, wrong
# format) answers 422 through client_fault(); an OperationalError, IntegrityError or ProgrammingError stays a 500.

import json as _json
import re as _re

INT_MAX = 2**31 - 1                 # INTEGER on PostgreSQL and MariaDB; every id column of the schema is one
BIGINT_MAX = 2**63 - 1              # the widest integer any of the three databases stores
_ID_KEY = _re.compile(r"^(id|ids|.+_id|.+_ids)$")
_PK_KEY = _re.compile(r"^(pk|rowid)$")           # a row of the view's own model: an id when its key is an integer
_PAGE_KEY = _re.compile(r"^(page|psize|page_size)(_.+)?$")
_DIGITS = _re.compile(r"^[0-9]{1,10}$")
_BAD_CHARS = _re.compile("[\x00\ud800-\udfff]")
MAX_PAGE = 10**6
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


class BadInput(RuleError):
    """Input refused before any view runs (see check_request)."""
    status = 400

    def __init__(self, message: str, code: str = "bad_request", status: int = 400):
        super().__init__(message, code=code, status=status)


def valid_id(value) -> bool:
    """An id as the schema stores it: a non-negative INTEGER (int, or its decimal digits), or nothing."""
    if value is None or value == "":
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 0 <= value <= INT_MAX
    return isinstance(value, str) and bool(_DIGITS.match(value)) and int(value) <= INT_MAX


def _bad_chars(text: str) -> bool:
    return bool(_BAD_CHARS.search(text))


def _refuse_chars(where: str):
    raise BadInput(f"{where}含有不允许的字符（NUL 控制字符或不成对的代理字符）", code="bad_character")


def check_json(value, max_depth: int, where: str = "请求体"):
    """Walk a parsed JSON value without recursion: depth, characters, integer range, id fields."""
    stack = [(value, 1, None)]
    while stack:
        item, depth, key = stack.pop()
        if depth > max_depth:
            raise BadInput(f"{where}嵌套层数超过{max_depth}层", code="too_deep")
        if isinstance(item, dict):
            for k, v in item.items():
                if _bad_chars(k):
                    _refuse_chars(where)
                if _ID_KEY.match(k):
                    values = v if (k.endswith("ids") and isinstance(v, list)) else [v]
                    if not all(valid_id(x) for x in values):
                        raise BadInput(f"数据不符合要求：{k}：应为有效的记录编号（0～{INT_MAX}的整数）",
                                       code="invalid", status=422)
                stack.append((v, depth + 1, k))
        elif isinstance(item, list):
            stack.extend((v, depth + 1, key) for v in item)
        elif isinstance(item, str):
            if _bad_chars(item):
                _refuse_chars(where)
        elif isinstance(item, int) and not isinstance(item, bool):
            if abs(item) > BIGINT_MAX:
                raise BadInput(f"数据不符合要求：{key or '数值'}：数值超出允许范围", code="invalid", status=422)
        elif isinstance(item, float) and (item != item or item in (float("inf"), float("-inf"))):
            raise BadInput(f"数据不符合要求：{key or '数值'}：不是有效的数字", code="invalid", status=422)


def _no_constants(name):
    raise ValueError(f"{name} is not JSON")


def parse_json(data: bytes | str, max_depth: int, where: str = "请求体"):
    try:
        value = _json.loads(data, parse_constant=_no_constants)
    except RecursionError:
        raise BadInput(f"{where}嵌套层数超过{max_depth}层", code="too_deep") from None
    except ValueError:              # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise BadInput(f"{where}不是有效的JSON", code="bad_json") from None
    check_json(value, max_depth, where)
    return value


def _view_of(app, endpoint):
    return getattr(app.view_functions.get(endpoint), "__self__", None)


def _integer_pk(view) -> bool:
    """Whether the view's model has one integer primary key (FAB's `<pk>` routes pass it as a string)."""
    datamodel = getattr(view, "datamodel", None)
    obj = getattr(datamodel, "obj", None)
    if obj is None:
        return False
    from sqlalchemy import Integer, inspect as sa_inspect
    try:
        pks = sa_inspect(obj).primary_key
    except Exception:           # not a mapped class
        return False
    return len(pks) == 1 and isinstance(pks[0].type, Integer)


def check_request(app, request) -> None:
    """The request-level input check (see the block comment above). Raises BadInput or a 404/413."""
    from werkzeug.exceptions import NotFound, RequestEntityTooLarge
    limit = app.config.get("MAX_CONTENT_LENGTH")
    if limit and request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge()
    max_depth = app.config.get("MAX_JSON_DEPTH", 32)

    # path: ids that cannot exist are not found; strings must be clean
    view = None
    for name, value in (request.view_args or {}).items():
        if isinstance(value, int) and not 0 <= value <= INT_MAX:
            raise NotFound()
        if isinstance(value, str):
            if _bad_chars(value):
                _refuse_chars("地址")
            if name == "pk":
                view = view or _view_of(app, request.endpoint)
                if value == "" or _integer_pk(view) and not valid_id(value):
                    raise NotFound()

    # FAB's generic routes answer 500 for names they do not know: an unknown action, a /download on a model
    # without files (FAB's own would serve any file of the upload folder), a chart group beyond its definitions
    method_name = (request.endpoint or "").rsplit(".", 1)[-1]
    if method_name in ("action", "action_post", "download") or "group_by" in (request.view_args or {}):
        view = view or _view_of(app, request.endpoint)
        if view is not None:
            _check_fab_route(view, method_name, request)

    # query string and form fields: clean characters, ids that are ids, paging that pages
    api = request.path.startswith("/api/")
    sources = [("查询参数", request.args)]
    if request.mimetype in FORM_TYPES and request.method in ("POST", "PUT", "PATCH", "DELETE"):
        sources.append(("表单", request.form))
    for where, values in sources:
        for key, value in values.items(multi=True):
            if _bad_chars(key) or _bad_chars(value):
                _refuse_chars(where)
            if key.startswith("_flt_") or key in ("csrf_token",):
                continue
            if _PK_KEY.match(key):
                view = view or _view_of(app, request.endpoint)
                if not _integer_pk(view):
                    continue
            if (_ID_KEY.match(key) or _PK_KEY.match(key)) and not valid_id(value.strip()):
                raise BadInput(f"{where}{key}应为有效的记录编号（0～{INT_MAX}的整数）", code="bad_id")
            if not api and _PAGE_KEY.match(key):
                if not _DIGITS.match(value) or int(value) > MAX_PAGE or (
                        key.startswith("psize") and int(value) > app.config.get("MAX_LIST_PAGE_SIZE", 1000)):
                    raise BadInput(f"分页参数{key}无效：应为0～{MAX_PAGE}的整数（每页最多"
                                   f"{app.config.get('MAX_LIST_PAGE_SIZE', 1000)}条）", code="bad_paging")
    if api and "q" in request.args:
        parse_rison(request.args["q"], max_depth)

    # a body that is (or claims to be) JSON: parseable, not too deep, clean; an object on the API
    if request.mimetype not in FORM_TYPES and (request.content_length or request.is_json):
        data = request.get_data(cache=True)
        if request.is_json or data.lstrip()[:1] in (b"{", b"["):
            body = parse_json(data, max_depth) if data.strip() else None
            if api and body is not None and not isinstance(body, dict):
                raise BadInput("请求体应为JSON对象（{…}）", code="bad_json")


def _check_fab_route(view, method_name: str, request) -> None:
    from werkzeug.exceptions import NotFound
    actions = getattr(view, "actions", None)
    if method_name == "action" and actions is not None and request.view_args.get("name") not in actions:
        raise NotFound()
    if method_name == "action_post" and actions is not None and request.method == "POST" \
            and request.mimetype in FORM_TYPES and request.form.get("action") not in actions:
        raise NotFound()
    datamodel = getattr(view, "datamodel", None)
    if method_name == "download" and datamodel is not None and hasattr(datamodel, "get_file_column_list") \
            and not (datamodel.get_file_column_list() + datamodel.get_image_column_list()):
        raise NotFound()
    group_by = (request.view_args or {}).get("group_by")
    if group_by is not None and hasattr(view, "definitions") and not (
            _DIGITS.match(str(group_by)) and int(group_by) < len(view.definitions or [])):
        raise NotFound()


def parse_rison(value: str, max_depth: int):
    """`?q=` as FAB's @rison reads it (rison, else JSON), refused as 400 where FAB would answer 500."""
    import urllib.parse
    import prison
    try:
        try:
            parsed = prison.loads(value)
        except prison.decoder.ParserException:
            parsed = _json.loads(urllib.parse.parse_qs(f"q={value}").get("q")[0], parse_constant=_no_constants)
    except RecursionError:
        raise BadInput(f"查询参数q嵌套层数超过{max_depth}层", code="too_deep") from None
    except Exception:
        raise BadInput("查询参数q格式不正确（应为 rison 或 JSON）", code="bad_rison") from None
    check_json(parsed, max_depth, "查询参数q")
    return parsed


def client_fault(exc) -> tuple[int, str, str] | None:
    """A database refusal caused by the value the client sent (a number out of the column's range, a text too
    long for it, a malformed date or number): (422, code, Chinese message). None for anything else: connection
    loss, deadlocks, constraint clashes and SQL errors are not the client's fault and stay 500s."""
    from sqlalchemy import exc as sa_exc
    if isinstance(exc, sa_exc.DataError):
        return 422, "invalid_value", "数据不符合要求：数值超出允许范围、文本过长或格式不正确"
    if isinstance(exc, sa_exc.StatementError) and not isinstance(exc, sa_exc.DBAPIError) \
            and isinstance(getattr(exc, "orig", None), (TypeError, ValueError, OverflowError)):
        return 422, "invalid_value", "数据不符合要求：值的类型或格式不正确"
    return None


# Errors after which the same transaction, run again from its start, may well succeed: a deadlock the server broke
# (PostgreSQL 40P01, InnoDB 1213, which also drops the transaction's savepoints: 1305), a lock wait given up (1205)
# or a serialization failure (40001).
TRANSIENT_CODES = {"40P01", "40001", 1213, 1205, 1305}


def transient(exc) -> bool:
    """PostgreSQL names the failure by SQLSTATE; MySQL-family servers by their error number (pymysql's sqlstate is a
    generic class like 42000), so both are looked at."""
    orig = getattr(exc, "orig", None)
    errno = orig.args[0] if orig is not None and getattr(orig, "args", None) else None
    return getattr(orig, "sqlstate", None) in TRANSIENT_CODES or errno in TRANSIENT_CODES


def with_retry(session, fn, attempts: int = 5):
    """Run a service's whole transaction ``fn()`` again from its start when the database broke it for a transient
    reason (``fn`` must (re)load what it changes), after a short random pause so that the parties that collided do
    not collide again in step; other errors, and the last attempt's, go to the caller."""
    import random
    import time
    from sqlalchemy.exc import DBAPIError
    for n in range(attempts):
        try:
            return fn()
        except DBAPIError as exc:
            if not transient(exc) or n == attempts - 1:
                raise
            session.rollback()
            time.sleep(random.uniform(0.01, 0.05) * (n + 1))

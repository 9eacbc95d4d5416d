"""Base classes every screen and API derives from. They declare; app/ decides.

- datamodel = ScopedInterface(Model): every query and write is scoped (app.scoping)
- read/write permission names (app.roles.VIEW_RW / API_RW)
- actions answer 404 for out-of-scope ids; /download serves only files of in-scope rows
- /export/csv (streamed) and /export/xlsx (background job, app.exportjobs): the list's own filters and
  scope, formula-safe, audited; list pages carry the export buttons (xueji/list.html)
- REST errors as JSON {code, message} with the rule's status (422, 403, 404), never SQL

A service (app.service) owns its transaction; a face shows its refusal through one path each: `refused()` on the
web (a flash, or 404), `rest_safe` on the REST API ({code, message} at the rule's status).
"""
import functools
import json
import mimetypes
import re
from contextlib import contextmanager

from flask import abort, flash, g, redirect, request, Response, send_file, stream_with_context, url_for
from flask_appbuilder import ModelRestApi, ModelView
from flask_appbuilder.api import get_list_schema, rison, safe
from flask_appbuilder.api.convert import Model2SchemaConverter
from flask_appbuilder.exceptions import FABException
from flask_appbuilder.security.decorators import has_access, protect
from flask_appbuilder.urltools import get_filter_args
from flask_appbuilder.views import expose
from flask_appbuilder.widgets import ListWidget
from marshmallow import fields as ma_fields, validate as ma_validate
from sqlalchemy import or_
from werkzeug.exceptions import NotFound

from app import exportjobs, filestore
from app.errors import INT_MAX, RuleError, client_fault, json_error
from app.exports import ExportSpec, csv_stream, export_rows, xlsx_file
from app.roles import API_RW, VIEW_RW
from app.scoping import apply_scope, current_scope



@contextmanager
def refused(abort_on=(404,)):
    """The web's one error path for a service call: a RuleError (the service has rolled back) becomes a flash of
    its Chinese message and the page goes on (to render the form again with what was typed); an out-of-scope row
    answers 404 as if it did not exist (`abort_on` adds 403 where no button leads a user who may not act).
    Write `with refused(): …; return redirect(…)`."""
    try:
        yield
    except RuleError as exc:
        if exc.status in abort_on:
            abort(exc.status)
        flash(exc.message, "danger")


def rest_safe(fn):
    """The REST API's one error path: FAB's @safe, with a RuleError answered as {code, message} at its status
    (the service has rolled back) instead of being logged as a fault."""
    @functools.wraps(fn)
    def run(self, *args, **kwargs):
        try:
            return fn(self, *args, **kwargs)
        except RuleError as exc:
            return json_error(exc.status, exc.code, exc.message)
    return safe(run)


def minute_field(label):
    """A date-time search field shown and read to the minute (FAB's default pre-fills now() to the microsecond)."""
    from flask_appbuilder.fieldwidgets import DateTimePickerWidget
    from wtforms import DateTimeField
    from wtforms.validators import Optional
    return DateTimeField(label, format="%Y-%m-%d %H:%M", widget=DateTimePickerWidget(), validators=[Optional()])


def wants_json() -> bool:
    """An import page's upload XHR (xueji/upload_widget.html sets X-Requested-With) wants {code, message} or
    {redirect}, not a redirect."""
    return request.headers.get("X-Requested-With") == "XMLHttpRequest"


def default_school(item) -> None:
    """School staff creating a school-scoped row: it belongs to their school (the flush check guards the rest)."""
    scope = current_scope()
    if getattr(type(item), "__scope__", None) == "school" and scope.kind == "school":
        if getattr(item, "school_id", None) is None and getattr(item, "school", None) is None:
            item.school_id = scope.school_id


class ScopedRoutesMixin:
    """Replaces FAB's action, action_post and download routes, which skip base_filters (FAB5-NOTES §2):
    here every id goes through the scoped datamodel and an out-of-scope id answers 404. Actions are
    POST-only (CSRF-protected)."""

    def _init_forms(self):
        """wtforms 3 renders the blank choice of an optional relation dropdown by its value, "__None": give it words."""
        super()._init_forms()
        from flask_appbuilder.fields import QuerySelectField
        for form in (self.add_form, self.edit_form, self.search_form):
            for unbound in vars(form).values():
                if getattr(unbound, "field_class", None) is QuerySelectField and unbound.kwargs.get("allow_blank"):
                    unbound.kwargs["blank_text"] = "（不选）"

    # --- actions: same scope as everything else ----------------------------------------------------
    def _scoped_items(self, pks):
        items = [self.datamodel.get(self._deserialize_pk_if_composite(pk)) for pk in pks]
        if not items or any(i is None for i in items):
            abort(404)
        return items

    @expose("/action/<string:name>/<pk>", methods=["POST"])
    def action(self, name, pk):
        if not self.appbuilder.sm.has_access(self.get_action_permission_name(name), self.class_permission_name):
            abort(403)
        act = self.actions.get(name) or abort(404)
        return self._run_action(act, self._scoped_items([pk])[0])

    @expose("/action_post", methods=["POST"])
    def action_post(self):
        name = request.form.get("action", "")
        if not self.appbuilder.sm.has_access(self.get_action_permission_name(name), self.class_permission_name):
            abort(403)
        act = self.actions.get(name) or abort(404)
        return self._run_action(act, self._scoped_items(request.form.getlist("rowid")))

    def _run_action(self, act, items):
        try:
            return act.func(items)
        except RuleError as exc:
            self.datamodel.session.rollback()
            flash(exc.message, "danger")
            return redirect(self.get_redirect())

    # --- files: only those referenced by an in-scope row -----------------------------------------------
    @expose("/download/<string:filename>")
    @has_access
    def download(self, filename):
        """A FAB file column's file (the file store's "files" area), only for a row in scope; none exist today."""
        model = self.datamodel.obj
        columns = self.datamodel.get_file_column_list() + self.datamodel.get_image_column_list()
        if not columns:
            abort(404)
        q = self.datamodel.session.query(model).filter(or_(*[getattr(model, c) == filename for c in columns]))
        if apply_scope(q, model).first() is None:
            abort(404)
        name = filename.split("_sep_", 1)[-1]
        resp = filestore.send("files", filename, mimetype=mimetypes.guess_type(name)[0], as_attachment=True,
                              download_name=name)
        return resp if resp is not None else abort(404)


class XuejiListWidget(ListWidget):
    """FAB's list table, cheaper per row (xueji/widgets/list.html): the row buttons are built once per page, and the
    cells are formatted here in one pass instead of through a Jinja call per cell."""
    template = "xueji/widgets/list.html"

    def __call__(self, **kwargs):
        args = {**self.template_args, **kwargs}
        formatters = [(col, args["formatters_columns"].get(col)) for col in args["include_columns"]]
        rows = [(pk, [fmt(item[col]) if fmt else item[col] for col, fmt in formatters])
                for pk, item in zip(args["pks"], args["value_columns"])]
        return super().__call__(**kwargs, xueji_rows=rows)


class XuejiModelView(ScopedRoutesMixin, ModelView):
    method_permission_name = VIEW_RW
    page_size = 25
    list_template = "xueji/list.html"
    list_widget = XuejiListWidget
    export_columns: list[str] | None = None      # column paths ("school.name"); default: the list's stored columns
    export_formatters: dict = {}                 # extra value formatters for exports only

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # every date and time on every list and page: to the minute, empty when missing (a view's own wins)
        from sqlalchemy import Date, DateTime
        from app.codes import when
        table = getattr(self.datamodel.obj, "__table__", None)
        times = {c.key: when for c in (table.columns if table is not None else ())
                 if isinstance(c.type, (Date, DateTime))}
        self.formatters_columns = {**times, **self.formatters_columns}

    def pre_add(self, item):
        default_school(item)

    # --- export: the list as the user sees it --------------------------------------------------------
    def _export_query(self):
        filters = self.datamodel.get_filters(self.search_columns)
        get_filter_args(filters)
        joined = filters.get_joined_filters(self._base_filters)
        order_column, order_direction = self.base_order or ("", "")
        q = self.datamodel.session.query(self.datamodel.obj)
        q = self.datamodel.apply_all(q, joined, order_column, order_direction)
        return q, filters

    def export_spec(self) -> ExportSpec:
        return export_spec_of(self)

    def _export_ids(self):
        """The screen's scoped, filtered, ordered query as a SELECT of ids."""
        q, _ = self._export_query()
        return q.with_entities(self.datamodel.obj.id).statement

    @expose("/export/<string:fmt>", methods=["GET", "POST"])
    @has_access
    def export(self, fmt):
        """CSV streams at once; Excel runs in the background (POST) and opens its progress page."""
        spec, session = self.export_spec(), self.datamodel.session
        query_string = request.query_string.decode()[:500]
        if fmt == "csv" and request.method == "GET":
            ids = exportjobs.record_csv(session, g.user, str(self.list_title or ""), self.datamodel.obj.__tablename__,
                                        query_string, self._export_ids())
            name = f"{self.datamodel.obj.__tablename__}.csv"
            return Response(stream_with_context(csv_stream(spec.headers, export_rows(session, spec, ids))),
                            mimetype="text/csv; charset=utf-8",
                            headers={"Content-Disposition": f"attachment; filename={name}"})
        if fmt == "xlsx" and request.method == "POST":
            with refused():
                job = exportjobs.start(session, g.user.id, spec, self._export_ids(),
                                       str(self.list_title or self.datamodel.obj.__tablename__), query_string)
                return redirect(url_for("ExportJobView.show", pk=job.id))
            return redirect(url_for(f"{self.endpoint}.list") + (f"?{query_string}" if query_string else ""))
        abort(405 if fmt in ("csv", "xlsx") else 404)

    def send_selected(self, items):
        """"Export selected" rows of one page: a small synchronous .xlsx."""
        spec = self.export_spec()
        rows = export_rows(self.datamodel.session, spec, [item.id for item in items])
        return send_file(xlsx_file(spec.headers, rows), as_attachment=True,
                         download_name=f"{self.datamodel.obj.__tablename__}.xlsx",
                         mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")

    def render_template(self, template, **kwargs):
        """List pages get the export buttons, carrying the page's own filters."""
        if "export" in (self.include_route_methods or {"export"}) and template == self.list_template:
            query = request.query_string.decode()
            suffix = f"?{query}" if query else ""
            kwargs.setdefault("export_csv_url", url_for(f"{self.endpoint}.export", fmt="csv") + suffix)
            kwargs.setdefault("export_xlsx_url", url_for(f"{self.endpoint}.export", fmt="xlsx") + suffix)
        return super().render_template(template, **kwargs)


def export_spec_of(owner) -> ExportSpec:
    """The columns a file gets (screens and APIs alike): ``export_columns``, else the list's columns that are stored
    (a relationship exports its target's name); values pass through the list's formatters (codes → labels)."""
    columns = owner.export_columns or _stored_columns(owner)
    labels = owner.label_columns
    return ExportSpec(owner.datamodel.obj, columns,
                      [str(labels.get(c) or labels.get(c.split(".")[0], c)) for c in columns],
                      {**getattr(owner, "formatters_columns", {}), **owner.export_formatters})


def _stored_columns(view) -> list[str]:
    from sqlalchemy import inspect as sa_inspect
    mapper = sa_inspect(view.datamodel.obj)
    out = []
    for column in view.list_columns:
        if column in mapper.column_attrs:
            out.append(column)
        elif column in mapper.relationships and "name" in mapper.relationships[column].mapper.column_attrs:
            out.append(f"{column}.name")
    return out


# marshmallow's messages, in the users' language
FIELD_MESSAGES = {"Missing data for required field.": "必填", "Unknown field.": "未知字段",
                  "Field may not be null.": "不能为空", "Not a valid integer.": "应为整数",
                  "Not a valid date.": "应为日期（YYYY-MM-DD）", "Not a valid string.": "应为文本",
                  "Not a valid boolean.": "应为是/否（true/false）", "Not a valid number.": "应为数字",
                  "Not a valid datetime.": "应为日期时间"}


def _chinese_validation(response):
    """FAB answers schema errors as 422 {"message": {field: [English]}}: give them our error shape."""
    if getattr(response, "status_code", None) not in (400, 422) or not response.is_json:
        return response
    body = response.get_json(silent=True) or {}
    fields = body.get("message")
    if not isinstance(fields, dict) or "code" in body:
        return response
    parts = []
    for field, messages in fields.items():
        messages = messages if isinstance(messages, list) else [messages]
        parts.append(f"{field}：" + "、".join(FIELD_MESSAGES.get(str(m), str(m)) for m in messages))
    out = json_error(422, "invalid", "数据不符合要求：" + "；".join(parts))
    out.json_fields = fields
    return out


class ZonedDateTime(ma_fields.DateTime):
    """Stored datetimes are the server's local time without a zone (app.clock): the API says which zone
    (ISO 8601 with its offset, +08:00 on a server set to China time) and takes any offset, stored as local."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is not None and value.tzinfo is None:
            value = value.astimezone()
        return super()._serialize(value, attr, obj, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        result = super()._deserialize(value, attr, data, **kwargs)
        return result.astimezone().replace(tzinfo=None) if result.tzinfo is not None else result


class NumberDecimal(ma_fields.Decimal):
    """NUMERIC columns as JSON numbers (2.8), as the OpenAPI document declares them, not strings ("2.8")."""

    def _serialize(self, value, attr, obj, **kwargs):
        out = super()._serialize(value, attr, obj, **kwargs)
        return None if out is None else float(out)


def _honest_fields(schema) -> None:
    """Fields say what the columns hold: ids and other INTEGER columns within INTEGER's range (so an id beyond it
    is a 422 on every database, not a DataError on two of them), datetimes with their zone, decimals as numbers."""
    for field in schema._declared_fields.values():
        if type(field) is ma_fields.Integer:
            field.validators.append(ma_validate.Range(min=-INT_MAX - 1, max=INT_MAX))
        elif type(field) is ma_fields.DateTime:
            field.__class__ = ZonedDateTime
        elif type(field) is ma_fields.Decimal:
            field.__class__ = NumberDecimal


class FkSchemaConverter(Model2SchemaConverter):
    """FAB's converter with include_fk: our APIs expose plain ids (school_id, class_id) instead of nesting."""

    def _meta_schema_factory(self, columns, model, class_mixin, parent_schema_name=None):
        schema = super()._meta_schema_factory(columns, model, class_mixin, parent_schema_name)
        schema = type(schema.__name__, (schema,), {"Meta": type("Meta", (schema.Meta,), {"include_fk": True})})
        _honest_fields(schema)
        return schema


class XuejiApi(ModelRestApi):
    model2schemaconverter = FkSchemaConverter
    method_permission_name = API_RW
    allow_browser_login = False
    export_columns: list[str] | None = None
    export_formatters: dict = {}

    @expose("/export", methods=["POST"])
    @protect()
    @safe
    @rison(get_list_schema)
    def export(self, **kwargs):
        """Start a background .xlsx export of what GET / with the same `q` (filters, order) lists.
        ---
        post:
          summary: 后台导出 Excel（与列表相同的筛选条件，最多 100,000 行）
          parameters:
          - in: query
            name: q
            content:
              application/json:
                schema:
                  $ref: '#/components/schemas/get_list_schema'
          responses:
            202:
              description: the export job; poll /api/v1/exportjob/<id>/status, then GET its file
            400:
              $ref: '#/components/responses/400'
            401:
              $ref: '#/components/responses/401'
            429:
              description: the user already has exports running
        """
        args = kwargs.get("rison", {})
        try:
            joined = self._handle_filters_args(args)
            order_column, order_direction = self._handle_order_args(args)
        except FABException as exc:
            return self.response_400(message=str(exc))
        model = self.datamodel.obj
        query = self.datamodel.apply_all(self.datamodel.session.query(model), joined, order_column, order_direction)
        try:
            job = exportjobs.start(self.datamodel.session, g.user.id, export_spec_of(self),
                                   query.with_entities(model.id).statement, model.__tablename__,
                                   request.query_string.decode())
        except RuleError as exc:
            return json_error(exc.status, exc.code, exc.message)
        return self.response(202, id=job.id, total=job.total, truncated=job.truncated,
                             status=f"/api/v1/exportjob/{job.id}/status")

    # `_info` as it is answered: columns are lists of field descriptions (FAB documents them as objects)
    openapi_spec_methods = {"info": {"get": {"responses": {200: {
        "description": "表单字段、筛选条件与当前用户的权限",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/XuejiInfo"}}}}}}}}

    def add_apispec_components(self, api_spec):
        super().add_apispec_components(api_spec)
        for name, schema in XUEJI_SCHEMAS.items():
            if name not in api_spec.components.schemas:
                api_spec.components.schema(name, schema)

    def _get_field_info(self, field, filter_rel_field, page=None, page_size=None):
        """FAB translates a missing description as gettext("") — the catalog's header: an empty one stays empty."""
        info = super()._get_field_info(field, filter_rel_field, page=page, page_size=page_size)
        info["description"] = str(self.description_columns.get(field.name) or "")
        info["label"] = str(self.label_columns.get(field.name) or field.name)
        return info

    def pre_add(self, item):
        default_school(item)

    def _guard(self, fn, *args, **kwargs):
        try:
            return _chinese_validation(fn(*args, **kwargs))
        except RuleError as exc:
            self.datamodel.session.rollback()
            return json_error(exc.status, exc.code, exc.message)
        except NotFound:
            return self.response_404()

    def get_list_headless(self, **kwargs):
        """Paging arguments out of range are the caller's mistake (422), not a database error."""
        rison = kwargs.get("rison") or {}
        for key, high in (("page", 10**6), ("page_size", 10**4)):
            value = rison.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= high):
                return json_error(422, "invalid_paging", f"分页参数{key}无效")
        return self._guard(super().get_list_headless, **kwargs)

    def post_headless(self):
        return self._guard(super().post_headless)

    def put_headless(self, pk):
        return self._guard(super().put_headless, pk)

    def delete_headless(self, pk):
        return self._guard(super().delete_headless, pk)


# --- every API: errors in Chinese, client faults as 422, an OpenAPI document that says what is answered --------

_FAB_400 = {"Not a valid rison/json argument": "查询参数q格式不正确（应为 rison 或 JSON）",
            "Not a valid rison argument": "查询参数q格式不正确（应为 rison）",
            "Request is not JSON": "请求体应为JSON", "Arguments are not correct": "请求参数有误"}


def _field_text(fields) -> str:
    parts = []
    for field, messages in fields.items():
        if isinstance(messages, dict):
            messages = [_field_text(messages)]
        messages = messages if isinstance(messages, list) else [messages]
        parts.append(f"{field}：" + "、".join(FIELD_MESSAGES.get(str(m), str(m)) for m in messages))
    return "；".join(parts)


def _response_400(self, message=None):
    if isinstance(message, dict):
        return json_error(400, "bad_request", "请求参数有误：" + _field_text(message))
    text = str(message or "")
    if text.startswith("400 Bad Request"):
        text = ""
    return json_error(400, "bad_request", _FAB_400.get(text) or ("请求参数有误" + (f"：{text}" if text else "")))


def _response_422(self, message=None):
    if isinstance(message, dict):
        return json_error(422, "invalid", "数据不符合要求：" + _field_text(message))
    return json_error(422, "invalid", "数据不符合要求" + (f"：{message}" if message else ""))


def _response_500(self, message=None):
    """Called by FAB's @safe inside its `except Exception`: the exception is still current."""
    import logging
    import sys
    from app.extensions import db
    exc = sys.exc_info()[1]
    db.session.rollback()
    fault = client_fault(exc) if exc is not None else None
    if fault:
        logging.getLogger(__name__).warning("input refused by the database on %s %s: %s", request.method,
                                            request.path, str(getattr(exc, "orig", exc)).splitlines()[0][:300])
        return json_error(*fault)
    return json_error(500, "internal", "系统内部错误，请稍后再试或联系管理员")


def install_api_errors(app) -> None:
    """Every API (FAB's BaseApi, so also those not derived from XuejiApi) answers errors as {code, message} in
    Chinese, a DataError caused by the client's value as 422 instead of FAB's 500 "Fatal error", and serves an
    OpenAPI document finished by finish_openapi()."""
    from flask_appbuilder.api import BaseApi
    if not getattr(BaseApi, "_xueji_errors", False):
        BaseApi.response_400 = _response_400
        BaseApi.response_422 = _response_422
        BaseApi.response_500 = _response_500
        BaseApi.response_401 = lambda self: json_error(401, "unauthorized", "未登录或登录已过期，请重新登录")
        BaseApi.response_403 = lambda self: json_error(403, "forbidden", "没有权限执行此操作")
        BaseApi.response_404 = lambda self: json_error(404, "not_found", "记录不存在或不在您的管辖范围内")
        BaseApi._xueji_errors = True
    view = app.view_functions.get("OpenApi.get")
    if view is not None and not getattr(view, "_xueji_finished", False):
        def openapi(version):
            resp = view(version)
            if getattr(resp, "status_code", None) == 200 and resp.is_json:
                resp.set_data(json.dumps(finish_openapi(resp.get_json(), app), ensure_ascii=False))
            return resp
        openapi._xueji_finished = True
        app.view_functions["OpenApi.get"] = openapi


ERROR_BODY = {"type": "object", "required": ["message"],
              "properties": {"code": {"type": "string", "description": "稳定的英文错误代码"},
                             "message": {"type": "string", "description": "中文说明"}}}
ERROR_TEXT = {400: "请求有误：含NUL或不成对代理字符、分页或查询参数q格式错误、JSON无效或嵌套过深",
              401: "未登录或令牌已失效", 403: "没有权限", 404: "记录不存在或不在管辖范围内",
              409: "与当前状态冲突（已被他人处理、在办业务、重复等）",
              413: "请求体超过 MAX_CONTENT_LENGTH", 422: "数据不符合要求（字段校验或值超出范围）",
              429: "操作太频繁或导出任务过多", 500: "系统内部错误"}
FIELD_INFO = {"type": "object", "properties": {
    "name": {"type": "string"}, "label": {"type": "string"}, "description": {"type": "string"},
    "type": {"type": "string"}, "required": {"type": "boolean"}, "unique": {"type": "boolean"},
    "validate": {"type": "array", "items": {"type": "string"}}, "count": {"type": "integer"},
    "values": {"type": "array", "items": {"type": "object"}}}}
XUEJI_SCHEMAS = {"XuejiInfo": {"type": "object", "properties": {
    "add_columns": {"type": "array", "items": FIELD_INFO},
    "edit_columns": {"type": "array", "items": FIELD_INFO},
    "add_title": {"type": "string"}, "edit_title": {"type": "string"},
    "filters": {"type": "object", "additionalProperties": {"type": "array", "items": {
        "type": "object", "properties": {"name": {"type": "string"}, "operator": {"type": "string"}}}}},
    "permissions": {"type": "array", "items": {"type": "string"}}}},
    "XuejiRequestState": {"type": "object", "properties": {"result": {"type": "object", "properties": {
        "id": {"type": "integer"}, "state": {"type": "string"}, "step_seq": {"type": "integer", "nullable": True}}}}}}
_PATH_PARAM = re.compile(r"{([^}]+)}")
_RULE_PARAM = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": INT_MAX}


def finish_openapi(spec: dict, app) -> dict:
    """What the generated document leaves out or gets wrong, fixed for every operation at once:
    path parameters declared (integers within INTEGER's range where the route converts to int), ids in answers
    as integers, and the answers the request-level checks and error handlers can give (400, 401/403 when signed
    in, 404 with an id in the path or a body naming rows, 413 with a body, 422) with their {code, message} body."""
    from werkzeug.routing import IntegerConverter
    int_params = {}                 # path template → parameters some route of it converts to int (FAB: <int:pk>)
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            names = int_params.setdefault(_RULE_PARAM.sub(r"{\1}", rule.rule), set())
            names.update(n for n, c in rule._converters.items() if isinstance(c, IntegerConverter))
    responses = spec.setdefault("components", {}).setdefault("responses", {})
    for status, text in ERROR_TEXT.items():
        responses[str(status)] = {"description": text, "content": {"application/json": {"schema": ERROR_BODY}}}
    for path, item in spec.get("paths", {}).items():
        names = _PATH_PARAM.findall(path)
        for method, op in item.items():
            if method not in ("get", "post", "put", "delete", "patch") or not isinstance(op, dict):
                continue
            params = op.setdefault("parameters", [])
            for name in names:
                schema = dict(ID_SCHEMA) if name in int_params.get(path, ()) or name == "pk" else \
                    {"type": "string"}
                declared = [p for p in params if p.get("in") == "path" and p.get("name") == name]
                if declared:
                    declared[0]["schema"], declared[0]["required"] = schema, True
                else:
                    params.append({"in": "path", "name": name, "required": True, "schema": schema})
            answers = op.setdefault("responses", {})
            if "/security/" not in path and not op.get("security"):
                op["security"] = [{"jwt": []}]          # every route outside sign-in is @protect()ed
            if not any(str(code).startswith("2") for code in answers):
                # a route without its own documentation: it answers success, not described further
                for code in ("200", "201") if method == "post" else ("200",):
                    answers[code] = {"description": "成功（此接口未单独描述应答内容）"}
            wanted = [400, 422]
            if op.get("security"):
                wanted += [401, 403]
            if names or method in ("post", "put", "delete"):
                wanted.append(404)
            if method in ("post", "put", "patch"):
                wanted += [409, 413]
            if method == "delete":
                wanted.append(409)
            for status in wanted:
                answers.setdefault(str(status), {"$ref": f"#/components/responses/{status}"})
            for status, answer in answers.items():
                schema = (((answer or {}).get("content") or {}).get("application/json") or {}).get("schema") or {}
                props = schema.get("properties") or {}
                if (props.get("id") or {}).get("type") == "string":
                    props["id"] = {"type": "integer", "description": props["id"].get("description", "")}
                if ((props.get("ids") or {}).get("items") or {}).get("type") == "string":
                    props["ids"]["items"] = {"type": "integer"}
    return spec

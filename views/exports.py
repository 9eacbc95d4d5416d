"""我的导出: the signed-in user's background exports, a progress page that polls, and the file download.
Only the owner sees a job (scope "owner"); another user's job id answers 404 on every route."""
from flask import abort, jsonify, url_for
from flask_appbuilder.api import safe
from flask_appbuilder.security.decorators import has_access, protect
from flask_appbuilder.views import expose

from app import exportjobs
from app.i18n import _l
from app.scoping import ScopedInterface
from models import ExportJob
from views.base import XuejiApi, XuejiModelView


class ExportJobView(XuejiModelView):
    datamodel = ScopedInterface(ExportJob)
    class_permission_name = "ExportJob"
    route_base = "/exportjob"
    include_route_methods = {"list", "show", "status", "file"}
    method_permission_name = {"list": "read", "show": "read", "status": "read", "file": "read"}
    list_title = show_title = _l("我的导出")
    label_columns = {"title": _l("内容"), "state_label": _l("状态"), "done": _l("已写行数"), "total": _l("总行数"),
                     "created_at": _l("开始时间"), "finished_at": _l("完成时间"), "filters": _l("筛选条件")}
    list_columns = ["title", "state_label", "done", "total", "created_at", "finished_at"]
    base_order = ("id", "desc")
    show_template = "xueji/export_job.html"

    @expose("/list/")
    @has_access
    def list(self):
        exportjobs.reap(self.datamodel.session)      # a killed worker's job shows as failed, not running
        return super().list()

    def _job(self, pk):
        job = self.datamodel.get(pk)
        if job is None:
            abort(404)
        return job

    @expose("/show/<pk>")
    @has_access
    def show(self, pk):
        job = self._job(pk)
        return self.render_template(self.show_template, job=job, status=exportjobs.status(job),
                                    title=self.show_title)

    @expose("/status/<pk>")
    @has_access
    def status(self, pk):
        """Polled by the progress page: {state, done, total, percent, error, download}."""
        job = self._job(pk)
        body = exportjobs.status(job)
        if body["state"] == "done":
            body["download"] = url_for(f"{self.endpoint}.file", pk=job.id)
        return jsonify(body)

    @expose("/file/<pk>")
    @has_access
    def file(self, pk):
        resp = exportjobs.send(self._job(pk))
        return resp if resp is not None else abort(404)


class ExportJobApi(XuejiApi):
    """/api/v1/exportjob: the caller's own exports (POST /api/v1/<resource>/export starts one)."""
    resource_name = "exportjob"
    datamodel = ScopedInterface(ExportJob)
    class_permission_name = "ExportJob"
    include_route_methods = {"get_list", "status", "file"}
    method_permission_name = {"get_list": "read", "status": "read", "file": "read"}
    list_columns = ["id", "title", "state", "total", "done", "truncated", "created_at", "finished_at"]
    order_columns = ["id", "created_at"]
    base_order = ("id", "desc")

    def pre_get_list(self, data):
        """A killed worker's job is listed as failed, not running (reaped before the answer goes out)."""
        gone = set(exportjobs.reap(self.datamodel.session))
        for item in data.get("result", []):
            if item.get("id") in gone:
                item["state"] = "failed"

    @expose("/<int:pk>/status")
    @protect()
    @safe
    def status(self, pk):
        """Progress of one export.
        ---
        get:
          summary: 导出进度
          parameters:
          - in: path
            name: pk
            schema:
              type: integer
          responses:
            200:
              description: state (queued, running, done, failed), done, total, percent, error
            404:
              $ref: '#/components/responses/404'
        """
        job = self.datamodel.get(pk)
        if job is None:
            return self.response_404()
        return self.response(200, **exportjobs.status(job))

    @expose("/<int:pk>/file")
    @protect()
    @safe
    def file(self, pk):
        """The finished .xlsx.
        ---
        get:
          summary: 下载导出的 Excel 文件
          parameters:
          - in: path
            name: pk
            schema:
              type: integer
          responses:
            200:
              description: the workbook
            404:
              $ref: '#/components/responses/404'
        """
        job = self.datamodel.get(pk)
        resp = exportjobs.send(job) if job is not None else None
        return resp if resp is not None else self.response_404()

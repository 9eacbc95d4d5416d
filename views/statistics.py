"""统计 (statistics) page: tables and ECharts charts (vendored, no CDN), each table downloadable as .xlsx."""

from flask import abort, request, send_file
from flask_appbuilder import BaseView
from flask_appbuilder.security.decorators import has_access
from flask_appbuilder.views import expose

from app import audit, statistics
from app.exports import xlsx_file
from app.extensions import db
from app.i18n import _l
from app.scoping import current_scope


class StatisticsView(BaseView):
    route_base = "/statistics"
    class_permission_name = "Statistics"
    method_permission_name = {"index": "read", "download": "read"}
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        scope = current_scope()
        tables = {name: statistics.table(db.session, scope, name) for name in statistics.TABLES}
        title, headers, classes = tables["classes"]
        shown = statistics.classes_on_screen(classes)
        tables["classes"] = (title, headers, shown)
        bands = statistics.class_size_bands(classes) if len(shown) < len(classes) else None
        return self.render_template("xueji/statistics.html", tables=tables, title=_l("学籍统计"),
                                    class_count=len(classes), class_bands=bands)

    @expose("/download/<string:name>.xlsx")
    @has_access
    def download(self, name):
        if name not in statistics.TABLES:
            abort(404)
        title, headers, rows = statistics.table(db.session, current_scope(), name, request.args.get("year", type=int))
        audit.record(db.session, "export", entity="statistics", field=name, new=f"rows={len(rows)}")
        db.session.commit()
        return send_file(xlsx_file(headers, rows, title[:30]), as_attachment=True, download_name=f"{title}.xlsx",
                         mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")



"""统计 (statistics) page: tables and ECharts charts (vendored, no CDN), each table downloadable as .xlsx."""

from flask import abort, g, request, send_file
from flask_appbuilder import BaseView
from flask_appbuilder.security.decorators import has_access
from flask_appbuilder.views import expose

from app import statistics
from app.exports import xlsx_file
from app.extensions import db
from app.i18n import _l
from app.scoping import current_scope


class StatisticsView(BaseView):
    route_base = "/statistics"
    class_permission_name = "Statistics"
    method_permission_name = {"index": "read", "download": "read"}
    default_view = "index"

    @staticmethod
    def _filter():
        """学校 and 年度 from the query string, checked against the user's scope (app.statistics.choose)."""
        return statistics.choose(db.session, current_scope(), request.args.get("school", type=int),
                                 request.args.get("year", type=int))

    @expose("/")
    @has_access
    def index(self):
        flt = self._filter()
        tables = {name: statistics.table(db.session, flt.scope, name, flt.year) for name in statistics.TABLES}
        title, headers, classes = tables["classes"]
        shown = statistics.classes_on_screen(classes)
        tables["classes"] = (title, headers, shown)
        bands = statistics.class_size_bands(classes) if len(shown) < len(classes) else None
        args = {k: v for k, v in (("school", flt.school_id), ("year", flt.year)) if v is not None}
        return self.render_template("xueji/statistics.html", tables=tables, title=_l("学籍统计"),
                                    class_count=len(classes), class_bands=bands, flt=flt, filter_args=args,
                                    years=statistics.year_choices(flt),
                                    class_labels=[statistics.class_label(r) for r in shown])

    @expose("/download/<string:name>.xlsx")
    @has_access
    def download(self, name):
        if name not in statistics.TABLES:
            abort(404)
        flt = self._filter()
        title, headers, rows = statistics.download(db.session, g.user, flt.scope, name, flt.year, flt.school_id)
        return send_file(xlsx_file(headers, rows, title[:30]), as_attachment=True, download_name=f"{title}.xlsx",
                         mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")



"""统计 (statistics) page: tables and ECharts charts (vendored, no CDN), each table downloadable as .xlsx; for
province and city bureaus the 数据截至 time of the snapshot and the 刷新统计 button (app/statistics.py)."""

from flask import abort, flash, g, redirect, request, send_file, url_for
from flask_appbuilder import BaseView
from flask_appbuilder.security.decorators import has_access
from flask_appbuilder.views import expose

from app import statistics
from app.exports import xlsx_file
from app.extensions import db
from app.i18n import _, _l
from app.scoping import current_scope
from views.base import refused


class StatisticsView(BaseView):
    route_base = "/statistics"
    class_permission_name = "Statistics"
    method_permission_name = {"index": "read", "download": "read", "refresh": "read"}   # refresh: the service decides
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
        tables = {name: statistics.table(db.session, flt.scope, name, flt.year) for name in statistics.TABLES
                  if name != "classes"}
        classes = statistics.classes_for_page(db.session, flt.scope)      # 班额: the rows listed, the bands
        tables["classes"] = (statistics.TABLES["classes"][0], statistics.CLASS_HEADERS, classes.rows)
        counts = {name: len(rows) for name, (_title, _headers, rows) in tables.items()}
        tables = {name: (title, headers, rows[:statistics.ROWS_ON_SCREEN] if name in statistics.LONG_TABLES else rows)
                  for name, (title, headers, rows) in tables.items()}
        args = {k: v for k, v in (("school", flt.school_id), ("year", flt.year)) if v is not None}
        return self.render_template("xueji/statistics.html", tables=tables, title=_l("学籍统计"), row_counts=counts,
                                    class_count=classes.count, class_bands=classes.bands, flt=flt,
                                    filter_args=args, flagged_count=classes.flagged,
                                    years=statistics.year_choices(flt),
                                    # charted one bar per class only without bands
                                    class_labels=[] if classes.bands else [statistics.class_label(r)
                                                                           for r in classes.rows],
                                    fresh=statistics.freshness(db.session, flt.scope, g.user))

    @expose("/refresh", methods=["POST"])
    @has_access
    def refresh(self):
        """刷新统计: queue a refresh of the snapshot (province and city bureaus; others are refused: 403)."""
        with refused(abort_on=(403, 404)):
            statistics.start_refresh(db.session, g.user)
            flash(_("已开始刷新统计，完成后本页显示新的“数据截至”时间"), "success")
        return redirect(url_for("StatisticsView.index"))

    @expose("/download/<string:name>.xlsx")
    @has_access
    def download(self, name):
        if name not in statistics.TABLES:
            abort(404)
        flt = self._filter()
        title, headers, rows = statistics.download(db.session, g.user, flt.scope, name, flt.year, flt.school_id)
        return send_file(xlsx_file(headers, rows, title[:30]), as_attachment=True, download_name=f"{title}.xlsx",
                         mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")



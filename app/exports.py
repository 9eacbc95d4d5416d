"""Exports of list results to CSV / XLSX: same filters and scope as the screen, formula-safe, long identifiers
written as text, Chinese headers, and recorded in the audit log.

One way rows leave the database: the screen's scoped, filtered query is frozen into its ordered ids (a snapshot),
then ``export_rows`` reads the export columns for those ids in chunks with one SELECT each (columns and
many-to-one joins only, no ORM objects, no per-row queries). The CSV stream, the background XLSX job
(app.exportjobs) and "export selected" all use it."""
import csv
import io
import tempfile
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import xlsxwriter
from sqlalchemy import Integer, any_, bindparam, inspect, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import aliased

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
MAX_ROWS = 100_000
CHUNK = 2_000


def safe_cell(value):
    """Neutralise spreadsheet formulas (CSV/Excel injection) by prefixing a quote; keep digits as text."""
    if value is None:
        return ""
    text = str(value)
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


@dataclass
class RowFormatter:
    """A column whose words depend on other columns of the row (年级: cohort + stage + 学制 + the county's school
    year): ``needs`` are extra column paths selected with the row, ``fn(value, row, session)`` gets the row as
    {path: value}."""
    needs: tuple[str, ...]
    fn: Callable


def _grade(value, row, session):
    from app import schoolyear
    return schoolyear.grade_name(row.get("stage"), value, schoolyear.school_years(session)(row.get("school.county_code")),
                             row.get("school.schooling"), row.get("status"))


# 年级 as a registrar says it (初三; "2024级" once the student has left), for an export of students
GRADE = RowFormatter(("stage", "status", "school.schooling", "school.county_code"), _grade)


def plain(value):
    """What a cell shows for a value without its own formatter: times to the minute, nothing for none."""
    import datetime
    from app.codes import when
    return when(value) if isinstance(value, (datetime.date, datetime.datetime)) else value


@dataclass
class ExportSpec:
    """What a screen exports: its model, the column paths ("xjh", "school.name"), their headers and the
    formatters that turn stored codes into what people read (民族 code → 汉族)."""
    model: type
    columns: list[str]
    headers: list[str]
    formatters: dict[str, Callable] = field(default_factory=dict)

    def statement(self):
        """SELECT id, <columns> with one outer join per many-to-one relationship on a path."""
        joins, exprs = {}, []
        for path in self.paths():
            *rels, name = path.split(".")
            entity = self.model
            for i, rel in enumerate(rels):
                key = ".".join(rels[:i + 1])
                if key not in joins:
                    target = aliased(inspect(entity).relationships[rel].mapper.class_)
                    joins[key] = (getattr(entity, rel), target)
                entity = joins[key][1]
            attr = getattr(entity, name, None)
            if attr is None or not hasattr(attr, "expression"):
                raise ValueError(f"export column {path!r} of {self.model.__name__} is not a database column")
            exprs.append(attr)
        stmt = select(self.model.id, *exprs)
        for rel_attr, target in joins.values():
            stmt = stmt.outerjoin(target, rel_attr.of_type(target))
        return stmt

    def paths(self) -> list[str]:
        """The export columns, then the extra columns a RowFormatter reads."""
        out = list(self.columns)
        for f in self.formatters.values():
            if isinstance(f, RowFormatter):
                out.extend(p for p in f.needs if p not in out)
        return out


def export_rows(session, spec: ExportSpec, ids: list[int], progress: Callable[[int], None] | None = None
                ) -> Iterator[list]:
    """The export columns of ``ids`` in their order, formatted, chunk by chunk (flat memory)."""
    stmt = spec.statement()
    formatters = [spec.formatters.get(c) for c in spec.columns]
    paths, width = spec.paths(), len(spec.columns)
    by_row = any(isinstance(f, RowFormatter) for f in formatters)
    as_array = session.get_bind().dialect.name == "postgresql"
    done = 0
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        # PostgreSQL takes the chunk as one array parameter (= ANY): half the client time of 2,000 IN parameters
        match = (spec.model.id == any_(bindparam("ids", chunk, type_=ARRAY(Integer)))) if as_array \
            else spec.model.id.in_(chunk)
        found = {row[0]: row[1:] for row in session.execute(stmt.where(match))}
        for pk in chunk:
            values = found.get(pk)
            if values is None:            # deleted since the snapshot
                continue
            row = dict(zip(paths, values)) if by_row else None
            yield [(f.fn(v, row, session) if isinstance(f, RowFormatter) else f(v)) if f else plain(v)
                   for f, v in zip(formatters, values[:width])]
        done += len(chunk)
        if progress:
            progress(done)


def csv_stream(headers, rows: Iterable[list]):
    """Yield CSV text chunks (UTF-8 with BOM so Excel opens Chinese correctly)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    yield "\ufeff"
    writer.writerow(headers)
    for i, row in enumerate(rows, 1):
        writer.writerow([safe_cell(v) for v in row])
        if i % 1000 == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def write_xlsx(target, headers, rows: Iterable[list], title="导出", tmpdir=None) -> int:
    """Write rows as text cells with XlsxWriter in constant-memory mode (each row goes to disk as it is written,
    so memory stays flat at any size); ``target`` is a path or a binary file. Returns the number of rows.
    XlsxWriter's own temporary files go to the app's scratch folder (app.uploads), never the system's."""
    from app import uploads
    wb = xlsxwriter.Workbook(target, {"constant_memory": True, "strings_to_numbers": False,
                                      "strings_to_formulas": False, "strings_to_urls": False,
                                      "tmpdir": tmpdir or uploads.scratch_dir()})
    ws = wb.add_worksheet(title[:31])
    text = wb.add_format({"num_format": "@"})          # IDs stay text even when someone edits the cell
    bold = wb.add_format({"bold": True, "num_format": "@"})
    for col, header in enumerate(headers):
        ws.set_column(col, col, min(max(10, 2 * len(str(header)) + 2), 24), text)
        ws.write_string(0, col, str(header), bold)
    ws.freeze_panes(1, 0)
    n = 0
    for n, row in enumerate(rows, 1):
        for col, value in enumerate(row):
            ws.write_string(n, col, safe_cell(value), text)
    wb.close()
    return n


def xlsx_file(headers, rows, title="导出"):
    """A small table (statistics, selected rows) as an .xlsx in a temporary file, ready to send."""
    from app import uploads
    tmp = tempfile.TemporaryFile(dir=uploads.scratch_dir())
    write_xlsx(tmp, headers, rows, title)
    tmp.seek(0)
    return tmp

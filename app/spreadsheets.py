"""Import spreadsheets: blank templates, a strict reader, and the annotated error workbook.

Pure functions (no database, no Flask). Files are recognised by their bytes, not their names: schools
upload saves from Excel, WPS and LibreOffice, and those programs turn long IDs into numbers that have
already lost digits, so such cells are reported, never "repaired". Reading uses python-calamine
(about 10x faster than openpyxl, see notes/PERF-BASELINES.md A); openpyxl writes.
"""
import csv
import datetime as dt
import io
import re
import unicodedata
import zipfile
import xml.etree.ElementTree as ET
from xml.sax.saxutils import unescape
from dataclasses import dataclass, field

from openpyxl import Workbook
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter, quote_sheetname
from openpyxl.worksheet.datavalidation import DataValidation

from app.errors import RuleError

MAX_BYTES = 10 * 1024 * 1024
MAX_UNZIPPED = 200 * 1024 * 1024
MAX_RATIO = 100
MAX_ROWS = 50_000

TEMPLATE_ROWS = 5_000           # data rows pre-formatted as text in the template
HEADER_SCAN = 10                # a title row or a merged two-row header may sit above the column names
ERROR_COLUMN = "错误说明"         # added by annotate(); ignored when the annotated file comes back
INSTRUCTIONS_SHEET = "填写说明"
CHOICES_SHEET = "选项"
MAX_ZIP_MEMBERS = 10_000        # an xlsx has a few dozen parts; thousands only serve to exhaust memory
MAX_META_PART = 1024 * 1024     # [Content_Types].xml / mimetype are read to tell the format; they are small

ZIP_MAGIC = b"PK\x03\x04"
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
SPREADSHEET_EXTS = (".xlsx", ".xlsm", ".xls", ".ods", ".et")
TEXT_EXTS = (".csv", ".txt")
ODS_MIMETYPE = b"application/vnd.oasis.opendocument.spreadsheet"
# The workbook's main part, not any spreadsheetml mention: a .docx with an embedded chart also has those.
XLSX_MAIN_PART = re.compile(
    rb"application/vnd\.(openxmlformats-officedocument\.spreadsheetml\.(sheet|template)\.main\+xml"
    rb"|ms-excel\.(sheet|template)\.macroEnabled\.main\+xml)")
INNER_SEPARATOR = re.compile(r"[\s\-_\u2010-\u2015\u2212]")   # inside a number (the ends are already stripped)
SCIENTIFIC = re.compile(r"^[+-]?\d+(\.\d*)?E[+-]?\d+$")
DECIMAL = re.compile(r"^\d+\.\d+$")     # "410102201203225000.0": a number written back as text
INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))
ERROR_FILL = PatternFill("solid", fgColor="FFC7CE")
NOTICE_FILL = PatternFill("solid", fgColor="FFF2CC")
HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
TEXT_FORMAT = "@"
FORMULA_COLUMNS = 64            # formula cells are located in the first columns only (the templates have 3)
SCAN_CHUNK = 1024 * 1024
# A formula element of a worksheet part (<f>, <f t="shared" .../>, or with a namespace prefix: <x:f>).
XLSX_FORMULA = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?f[\s/>]")
ODS_FORMULA = re.compile(rb":formula=")
NS_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
NS_STRICT = "{http://purl.oclc.org/ooxml/spreadsheetml/main}"
NS_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
NS_TABLE = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}"
CELL_REF = re.compile(r"^([A-Z]{1,3})(\d+)$")
XLSX_REF = re.compile(rb"\sr=[\"']([A-Z]{1,3})(\d+)[\"']")
XLSX_FORMULA_TEXT = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?f(?:\s[^>]*)?(?<!/)>([^<]*)<")
XML_QUOTES = {"&quot;": '"', "&apos;": "'"}
# 姓名: Chinese characters (the CJK blocks and extensions), the middle dot of 维吾尔族 and other names (·, ・), and
# for foreign names Latin letters with spaces and inner ' - . (O'Neil, Jean-Pierre, St. John).
NAME_CHARS = re.compile(r"^[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
                        r"\u00b7\u30fbA-Za-z\u00c0-\u024f '.\-]+$")
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
DOTS = "\u00b7\u30fb"


@dataclass(frozen=True)
class Column:
    name: str                      # header text, e.g. "学籍号"
    required: bool = True
    kind: str = "text"             # "text" | "id" (long identifiers) | "choice" | "name" (a person's name)
    choices: tuple[str, ...] = ()
    width: int = 20


@dataclass(frozen=True)
class Issue:
    row: int                       # spreadsheet row number
    column: str | None             # column name, or None for a whole-row issue
    code: str                      # stable English code
    message: str                   # Chinese, naming the row, the column and the reason
    level: str = "error"           # "error" (the row cannot be used) | "notice" (accepted, but the user is told)


@dataclass
class Row:
    number: int                    # spreadsheet row number as the user sees it (header = 1)
    values: dict[str, str | None]  # column name -> normalised text (None when empty)
    # Cells whose value was accepted after normalising (full-width characters, spaces, invisible characters...):
    # Issues of level "notice", code "normalised". Not part of a row's equality: they describe how it was read.
    notices: list[Issue] = field(default_factory=list, compare=False)


class SheetRefused(RuleError):
    """The whole file is refused (wrong type, too big, wrong header...); nothing was read from it."""

    def __init__(self, message: str, code: str):
        super().__init__(message, code=code, status=422)


# ---------------------------------------------------------------- template

def build_template(columns: list[Column], title: str, instructions: list[str]) -> bytes:
    """A blank import template: header, text-formatted cells, dropdowns, and a sheet of instructions."""
    wb = Workbook()
    ws = wb.active
    ws.title = _sheet_title(title)
    _setup_sheet(ws, columns, TEMPLATE_ROWS + 1)
    _write_instructions(wb.create_sheet(INSTRUCTIONS_SHEET), columns, instructions)
    return _save(wb)


def _setup_sheet(ws, columns: list[Column], last_row: int) -> None:
    """Header in row 1, frozen below it, widths, text format and dropdowns down to last_row."""
    for i, col in enumerate(columns, 1):
        cell = ws.cell(1, i, col.name)
        cell.font = Font(bold=True, color=None if col.required else "595959")
        cell.fill = HEADER_FILL
        cell.alignment = Alignment(horizontal="center")
        letter = get_column_letter(i)
        ws.column_dimensions[letter].width = col.width
        # The column style covers rows typed beyond last_row; explicit cells cover programs ignoring it.
        ws.column_dimensions[letter].number_format = TEXT_FORMAT
        for r in range(2, last_row + 1):
            ws.cell(r, i).number_format = TEXT_FORMAT
        if col.kind == "choice" and col.choices:
            _add_dropdown(ws, col, f"{letter}2:{letter}{last_row}")
    ws.freeze_panes = "A2"


def _add_dropdown(ws, col: Column, ref: str) -> None:
    """A list validation; long or comma-bearing choice lists go to a hidden sheet (inline lists max 255 chars)."""
    inline = ",".join(col.choices)
    if len(inline) <= 250 and not any(ch in choice for choice in col.choices for ch in '",'):
        formula = f'"{inline}"'
    else:
        formula = _choices_range(ws.parent, col)
    dv = DataValidation(type="list", formula1=formula, allow_blank=not col.required, showErrorMessage=True,
                        errorTitle="不在可选范围内", error=f"“{col.name}”只能选择：{'、'.join(col.choices)}")
    dv.add(ref)
    ws.add_data_validation(dv)


def _choices_range(wb, col: Column) -> str:
    """Write a column's choices into a hidden sheet and return an absolute reference to them."""
    ws = wb[CHOICES_SHEET] if CHOICES_SHEET in wb.sheetnames else wb.create_sheet(CHOICES_SHEET)
    ws.sheet_state = "hidden"
    c = ws.max_column + 1 if ws.max_row > 1 or ws["A1"].value is not None else 1
    for r, choice in enumerate(col.choices, 1):
        ws.cell(r, c, choice).data_type = "s"
    letter = get_column_letter(c)
    return f"{quote_sheetname(CHOICES_SHEET)}!${letter}$1:${letter}${len(col.choices)}"


def _write_instructions(ws, columns: list[Column], instructions: list[str]) -> None:
    ws.column_dimensions["A"].width = 20
    ws.column_dimensions["B"].width = 10
    ws.column_dimensions["C"].width = 70
    ws.append([INSTRUCTIONS_SHEET])
    ws["A1"].font = Font(bold=True, size=14)
    for line in instructions:
        ws.append([line])
    ws.append([])
    ws.append(["列名", "是否必填", "说明"])
    for cell in ws[ws.max_row]:
        cell.font = Font(bold=True)
    for col in columns:
        ws.append([col.name, "必填" if col.required else "选填", _column_hint(col)])


def _column_hint(col: Column) -> str:
    if col.kind == "choice":
        return "可选值：" + "、".join(col.choices)
    if col.kind == "id":
        return "文本格式，请直接输入完整号码（含末位X），不要改成数字或科学计数法"
    if col.kind == "name":
        return "汉字（少数民族姓名可用间隔号“·”）或外文字母，不能含数字和符号，不要用公式"
    return "文本，不要用公式"


# ---------------------------------------------------------------- reading

def read_table(data: bytes, filename: str, columns: list[Column],
               max_bytes: int = MAX_BYTES) -> tuple[list[Row], list[Issue]]:
    """Read the first sheet of an uploaded file into normalised rows plus per-cell issues.

    Raises SheetRefused when the file as a whole cannot be used. Rows with issues are returned too,
    so the caller can show every problem at once.
    """
    grid, formulas = _read_grid(data, filename or "", max_bytes)
    header_index, width = _find_header(grid, columns)
    rows, issues = [], []
    # calamine's grid ends at the last cell holding a value; a formula without a cached value may lie below it
    end = max(len(grid), max(formulas, default=-1) + 1)
    for index in range(header_index + 1, end):
        raw = grid[index] if index < len(grid) else []
        row, row_issues = _parse_row(raw, index + 1, columns[:width], formulas.get(index))
        if row is None:
            continue
        if len(rows) >= MAX_ROWS:
            raise _too_many_rows()
        for col in columns[width:]:       # optional trailing columns the file left out
            row.values[col.name] = None
        rows.append(row)
        issues.extend(row_issues)
    return rows, issues


def _read_grid(data: bytes, filename: str, max_bytes: int) -> tuple[list[list], dict[int, dict[int, str]]]:
    """The first sheet as a list of rows of raw cell values, row 0 being spreadsheet row 1, and its formula cells
    ({row index: {column index: formula text}}; calamine gives a formula's cached value, never the formula)."""
    if not data:
        raise SheetRefused("上传的文件是空的，请选择填写好的模板文件", "empty_file")
    if len(data) > max_bytes:
        raise SheetRefused(f"文件过大（{_size(len(data))}），上限为{_size(max_bytes)}；请拆分后分批导入",
                           "file_too_large")
    ext = _extension(filename)
    if data.startswith(ZIP_MAGIC):
        zf = _check_zip(data)
        return _calamine_grid(data), _zip_formulas(zf, 2 * MAX_ROWS + HEADER_SCAN)
    if data.startswith(OLE2_MAGIC):
        return _calamine_grid(data), {}
    if ext in SPREADSHEET_EXTS:
        raise SheetRefused(f"文件扩展名是{ext}，但内容不是Excel/WPS/LibreOffice表格（可能是网页或文本改了扩展名）；"
                           "请用Excel或WPS打开后另存为.xlsx再上传", "bad_file_type")
    if ext not in TEXT_EXTS:
        raise _bad_type()
    return _csv_grid(_decode_text(data)), {}


def _check_zip(data: bytes) -> zipfile.ZipFile:
    """xlsx and ods are zips: check sizes from the central directory (nothing is inflated), then the type."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError):
        raise SheetRefused("文件已损坏，无法打开；请用Excel或WPS重新保存后上传", "bad_file_type") from None
    unzipped = sum(i.file_size for i in infos)
    packed = max(sum(i.compress_size for i in infos), 1)
    if len(infos) > MAX_ZIP_MEMBERS or unzipped > MAX_UNZIPPED or unzipped / packed > MAX_RATIO:
        raise SheetRefused("文件解压后过大或压缩比异常，已拒绝（可能是恶意构造的文件）；"
                           "请上传用下载的模板正常填写的表格", "zip_bomb")
    if not (_is_xlsx(zf) or _is_ods(zf)):
        raise SheetRefused("文件是压缩包或Word等其他文档，不是Excel/WPS/LibreOffice表格；请上传填写好的模板",
                           "bad_file_type")
    return zf


def _small_member(zf: zipfile.ZipFile, name: str) -> bytes | None:
    try:
        info = zf.getinfo(name)
    except KeyError:
        return None
    if info.file_size > MAX_META_PART:
        return None
    try:
        return zf.read(info)
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, ValueError, OSError, EOFError):
        return None


def _is_xlsx(zf: zipfile.ZipFile) -> bool:
    types = _small_member(zf, "[Content_Types].xml")
    return bool(types and XLSX_MAIN_PART.search(types))


def _is_ods(zf: zipfile.ZipFile) -> bool:
    mimetype = _small_member(zf, "mimetype")
    return bool(mimetype and mimetype.strip() == ODS_MIMETYPE)


# ---------------------------------------------------------------- formula cells

def _zip_formulas(zf: zipfile.ZipFile, height: int) -> dict[int, dict[int, str]]:
    """Formula cells of the first sheet of an xlsx or ods. A cheap streaming search for a formula marker first
    (most files have none); only a file that has one is parsed, streaming, rows past the grid ignored. Sizes are
    already bounded by _check_zip."""
    try:
        if _is_ods(zf):
            member, marker, parse = "content.xml", ODS_FORMULA, _ods_formulas
        else:
            member, marker, parse = _first_sheet_part(zf), XLSX_FORMULA, _xlsx_formulas
        if member is None or not _has_marker(zf, member, marker):
            return {}
        if parse is _xlsx_formulas:
            found = _xlsx_formulas_by_ref(zf, member, height)
            if found is not None:
                return found
        with zf.open(member) as stream:
            return parse(stream, height)
    except (KeyError, ET.ParseError, zipfile.BadZipFile, NotImplementedError, RuntimeError, ValueError, OSError,
            EOFError):
        # calamine read the sheet; a part we cannot follow here only means formulas are not located
        return {}


def _has_marker(zf: zipfile.ZipFile, member: str, marker: re.Pattern) -> bool:
    tail = b""
    with zf.open(member) as stream:
        while chunk := stream.read(SCAN_CHUNK):
            if marker.search(tail + chunk):
                return True
            tail = chunk[-32:]
    return False


def _first_sheet_part(zf: zipfile.ZipFile) -> str | None:
    """The part of the workbook's first sheet (the one calamine reads): workbook.xml's first <sheet>, through
    the workbook's relationships."""
    workbook = _small_member(zf, "xl/workbook.xml")
    rels = _small_member(zf, "xl/_rels/workbook.xml.rels")
    if not workbook or not rels:
        return None
    sheet = next((e for e in ET.fromstring(workbook).iter() if e.tag in (NS_MAIN + "sheet", NS_STRICT + "sheet")),
                 None)
    rid = sheet is not None and next((v for k, v in sheet.attrib.items() if k.endswith("}id")), None)
    if not rid:
        return None
    target = next((e.get("Target") for e in ET.fromstring(rels).iter() if e.get("Id") == rid), None)
    if not target:
        return None
    return target.lstrip("/") if target.startswith("/") else "xl/" + target


def _column_index(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n - 1


def _xlsx_formulas_by_ref(zf: zipfile.ZipFile, member: str, height: int) -> dict[int, dict[int, str]] | None:
    """The fast path: every program that writes xlsx gives each cell its reference (r="B12"), so a formula's cell
    is the <c ...> start tag before its <f>. Reads the part in chunks cut at row ends; None when a formula's cell
    has no reference (then the sheet is parsed as XML)."""
    found: dict[int, dict[int, str]] = {}
    carry = b""
    with zf.open(member) as stream:
        while True:
            chunk = stream.read(SCAN_CHUNK)
            buf = carry + chunk
            cut = len(buf) if not chunk else buf.rfind(b"</row>") + 6 if b"</row>" in buf else -1
            if cut < 0:                                      # no complete row yet: read on
                carry = buf
                continue
            segment, carry = buf[:cut], buf[cut:]
            for m in XLSX_FORMULA.finditer(segment):
                lo = max(0, m.start() - 512)                 # <f> is the first child of its <c ...>
                start = max(segment.rfind(b"<c ", lo, m.start()), segment.rfind(b":c ", lo, m.start()))
                tag_end = segment.find(b">", start)
                ref = XLSX_REF.search(segment, start, tag_end) if start >= 0 else None
                if ref is None:
                    return None
                row_index = int(ref.group(2)) - 1
                col_index = _column_index(ref.group(1).decode())
                if row_index < height and col_index < FORMULA_COLUMNS:
                    text = XLSX_FORMULA_TEXT.match(segment, m.start())
                    formula = "=" + unescape(text.group(1).decode("utf-8", "replace"), XML_QUOTES) \
                        if text and text.group(1) else "=（共享公式）"
                    found.setdefault(row_index, {})[col_index] = formula
            if not chunk:
                return found


def _xlsx_formulas(stream, height: int) -> dict[int, dict[int, str]]:
    found: dict[int, dict[int, str]] = {}
    row_index, col_index, formula = -1, -1, None
    for event, elem in ET.iterparse(stream, events=("start", "end")):
        tag = elem.tag.rsplit("}", 1)[-1]
        if event == "start":
            if tag == "row":
                r = elem.get("r")
                row_index = int(r) - 1 if r and r.isdigit() else row_index + 1
                col_index = -1
                if row_index >= height:
                    break
            elif tag == "c":
                m = CELL_REF.match(elem.get("r") or "")
                col_index = _column_index(m.group(1)) if m else col_index + 1
                formula = None
        elif tag == "f":
            formula = "=" + elem.text if elem.text else "=（共享公式）"
        elif tag == "c":
            if formula is not None and col_index < FORMULA_COLUMNS:
                found.setdefault(row_index, {})[col_index] = formula
            elem.clear()
        elif tag == "row":
            elem.clear()
    return found


def _ods_formulas(stream, height: int) -> dict[int, dict[int, str]]:
    """table:formula attributes of the first table; repeated rows and cells are counted, never expanded."""
    found: dict[int, dict[int, str]] = {}
    table_tag, row_tag = NS_TABLE + "table", NS_TABLE + "table-row"
    cells = (NS_TABLE + "table-cell", NS_TABLE + "covered-table-cell")
    depth, row_index, col_index, repeat_rows = 0, 0, 0, 1
    for event, elem in ET.iterparse(stream, events=("start", "end")):
        if elem.tag == table_tag:
            if event == "start":
                depth += 1
            elif depth == 1:
                break                                   # the first table is done
            else:
                depth -= 1
            continue
        if depth != 1:
            continue
        if elem.tag == row_tag:
            if event == "start":
                col_index = 0
                repeat_rows = min(int(elem.get(NS_TABLE + "number-rows-repeated") or 1), height + 1)
            else:
                row_index += repeat_rows
                elem.clear()
                if row_index >= height:
                    break
        elif elem.tag in cells and event == "start":
            repeat = int(elem.get(NS_TABLE + "number-columns-repeated") or 1)
            formula = elem.get(NS_TABLE + "formula")
            if formula is not None:
                text = formula.split(":", 1)[1] if formula.startswith(("of:", "oooc:", "msoxl:")) else formula
                for c in range(col_index, min(col_index + repeat, FORMULA_COLUMNS)):
                    for r in range(row_index, min(row_index + repeat_rows, height)):
                        found.setdefault(r, {})[c] = text
            col_index += repeat
    return found


def _calamine_grid(data: bytes) -> list[list]:
    # Imported here: only uploads need it.
    from python_calamine import CalamineError, CalamineWorkbook, PasswordError
    try:
        wb = CalamineWorkbook.from_filelike(io.BytesIO(data))
        with wb:
            sheet = wb.get_sheet_by_index(0)
            end = sheet.end
            # Only cells holding values count (formatting does not); this bounds memory before converting.
            if end and end[0] + 1 > 2 * MAX_ROWS + HEADER_SCAN:
                raise _too_many_rows()
            # skip_empty_area=False: row 0 is spreadsheet row 1 and column 0 is column A, whatever is empty.
            return sheet.to_python(skip_empty_area=False)
    except PasswordError:
        raise SheetRefused("文件设置了打开密码，请去掉密码后重新上传", "bad_file_type") from None
    except SheetRefused:
        raise
    except (CalamineError, ValueError, OSError, UnicodeError):
        raise SheetRefused("文件已损坏或不是表格文件（例如Word的.doc），无法读取；请用Excel或WPS重新保存后上传",
                           "bad_file_type") from None


def _decode_text(data: bytes) -> str:
    """CSV/TXT: UTF-16 with BOM (Excel 'Unicode text'), UTF-8 with or without BOM, else GB18030."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encodings = ("utf-16",)
    else:
        encodings = ("utf-8-sig", "gb18030")
    for encoding in encodings:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if "\x00" not in text:
            return text
        break
    raise _bad_type()


def _csv_grid(text: str) -> list[list]:
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if first_line.count("\t") > first_line.count(",") else ","
    grid = []
    for record in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter):
        grid.append(record)
        if len(grid) > 2 * MAX_ROWS + HEADER_SCAN:
            raise _too_many_rows()
    return grid


def _find_header(grid: list[list], columns: list[Column]) -> tuple[int, int]:
    """The index of the header row and how many expected columns it has; bad_header when there is none."""
    names = [c.name for c in columns]
    minimum = max((i + 1 for i, c in enumerate(columns) if c.required), default=1)
    candidate = None
    for index, raw in enumerate(grid[:HEADER_SCAN]):
        header = _header_cells(raw)
        if header and header[-1] == ERROR_COLUMN:     # the annotated error workbook, uploaded again
            header = header[:-1]
        if minimum <= len(header) <= len(names) and header == names[:len(header)]:
            return index, len(header)
        if candidate is None and (set(header) & set(names + [ERROR_COLUMN])):
            candidate = header
    if candidate is None:
        candidate = next((h for h in map(_header_cells, grid[:HEADER_SCAN]) if h), [])
    found = "、".join(c if c else "（空）" for c in candidate) or "（空白）"
    raise SheetRefused(f"表头与模板不符。模板列应为：{'、'.join(names)}（请使用下载的模板，不要修改列）；"
                       f"文件中的表头为：{found}", "bad_header")


def _header_cells(raw: list) -> list[str]:
    cells = [re.sub(r"\s+", "", _text(v)) if v not in (None, "") else "" for v in raw]
    while cells and not cells[-1]:
        cells.pop()
    return cells


def _parse_row(raw: list, number: int, columns: list[Column],
               formulas: dict[int, str] | None = None) -> tuple[Row | None, list[Issue]]:
    """Normalise one data row; None when every expected cell is empty (Excel leaves such rows around). A formula
    cell is never empty, whatever its cached value."""
    cells = list(raw[:len(columns)]) + [None] * (len(columns) - len(raw))
    if not formulas and all(v is None or (isinstance(v, str) and not _text(v)) for v in cells):
        return None, []
    values, issues, notices = {}, [], []
    for index, (col, raw_value) in enumerate(zip(columns, cells, strict=True)):
        formula = formulas.get(index) if formulas else None
        if formula is not None:
            values[col.name] = formula
            issues.append(Issue(number, col.name, "formula",
                                f"第{number}行“{col.name}”：单元格是公式（{_short(formula)}），系统不计算公式，"
                                "也不读取公式的结果；请直接填写内容（可复制后“选择性粘贴→仅粘贴数值”）"))
            continue
        value, issue, notice = _cell(raw_value, col, number)
        values[col.name] = value
        if issue:
            issues.append(issue)
        if notice:
            notices.append(notice)
    return Row(number, values, notices), issues


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _cell(raw, col: Column, number: int) -> tuple[str | None, Issue | None, Issue | None]:
    """One cell's normalised text, at most one issue about it, and a notice when normalising changed it."""
    if col.kind == "id" and isinstance(raw, (int, float)) and not isinstance(raw, bool):
        shown = _number_text(raw)
        return shown, Issue(number, col.name, "id_as_number", _id_number_message(number, col, raw, shown)), None
    value, changes = _normalise(raw, col)
    notice = None
    if changes and value is not None:
        notice = Issue(number, col.name, "normalised",
                       f"第{number}行“{col.name}”：{'，'.join(changes)}，按“{value}”读取", level="notice")
    if value is None:
        if col.required:
            return None, Issue(number, col.name, "required", f"第{number}行“{col.name}”：必填，不能为空"), None
        return None, None, None
    if col.kind == "id" and INNER_SEPARATOR.search(value):
        message = (f"第{number}行“{col.name}”：号码“{value}”中间有空格、横线或下划线；号码应连续填写，"
                   "系统不会自动删除，请核对后重新填写")
        return value, Issue(number, col.name, "inner_separator", message), notice
    if col.kind == "id" and (SCIENTIFIC.match(value) or DECIMAL.match(value)):
        message = (f"第{number}行“{col.name}”：号码显示为数字形式（{value}），说明已被Excel/WPS转换成数字并丢失位数；"
                   "请将该列设为文本格式后重新填写，系统不会自动修复")
        return value, Issue(number, col.name, "id_as_number", message), notice
    if col.kind == "choice" and value not in col.choices:
        message = f"第{number}行“{col.name}”：“{value}”不是可选的值，应为以下之一：{'、'.join(col.choices)}"
        return value, Issue(number, col.name, "bad_choice", message), notice
    if col.kind == "name":
        reason = name_problem(value)
        if reason:
            return value, Issue(number, col.name, "bad_name", f"第{number}行“{col.name}”：“{_short(value, 20)}”{reason}"), \
                notice
    return value, None, notice


def name_problem(name: str) -> str | None:
    """Why a value cannot be a person's name (None when it can): characters no name has. Chinese characters with
    the middle dot (维吾尔族 and other names: 买买提·艾力), or Latin letters with spaces for foreign names."""
    if NAME_CHARS.match(name) and name[0].isalpha() and name[-1] not in DOTS + "-'" and not any(
            a in DOTS and b in DOTS for a, b in zip(name, name[1:])):
        return None
    first = name[0]
    if first in "=+-@":
        return f"以“{first}”开头，表格程序会把它当作公式；姓名只能是汉字、间隔号“·”或外文字母"
    if any(ch in "<>" for ch in name):
        return "含有“<”“>”等网页标记符号，不是姓名"
    if any(ch.isdigit() for ch in name):
        return "含有数字，姓名中不能有数字"
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in name):
        return "含有控制字符，请重新输入"
    bad = next((ch for ch in name if not NAME_CHARS.match(ch)), None)
    if bad is not None:
        return f"含有姓名中不会出现的字符“{bad}”；姓名只能是汉字、间隔号“·”或外文字母"
    return "格式不对：间隔号“·”只能在两个字之间，姓名不能以符号开头或结尾"


def _id_number_message(number: int, col: Column, raw, shown: str) -> str:
    digits = len(str(abs(int(raw)))) if float(raw).is_integer() else 99
    loss = "已丢失位数" if digits > 15 else "可能已丢失开头的0或末尾的X"
    return (f"第{number}行“{col.name}”：号码被Excel/WPS转换成了数字（{shown}），{loss}；"
            "请将该列设为文本格式后重新填写，系统不会自动修复")


def _normalise(raw, col: Column) -> tuple[str | None, list[str]]:
    """The cell's text as stored, and what normalising changed in a text cell (for the notice; numbers and dates
    written as text are not "changes")."""
    if raw is None:
        return None, []
    if not isinstance(raw, str):
        return _text(raw) or None, []
    changes = []
    if raw.isascii():                                      # the common case: no NFKC, no invisible characters
        text = raw.strip()
        if text != raw and text:
            changes.append("已去除首尾空格")
    else:
        text = raw
        if not unicodedata.is_normalized("NFKC", raw):
            odd = [ch for ch in raw if not unicodedata.is_normalized("NFKC", ch)]
            if any(not ch.isspace() for ch in odd):
                changes.append("已将全角字符转换为半角")
            if any(ch.isspace() for ch in odd):
                changes.append("已将全角空格或不间断空格转换为普通空格")
            text = unicodedata.normalize("NFKC", raw)
        stripped = text.translate(INVISIBLE)
        if stripped != text:
            changes.append("已删除不可见字符（零宽空格等）")
        text = stripped.strip()
        if text != stripped and text:
            changes.append("已去除首尾空格")
    if col.kind == "id" and text:
        compact = text                                    # separators inside a number are refused in _cell
        if compact.startswith("'"):
            changes.append("已去除开头的单引号")
            compact = compact.lstrip("'")
        upper = compact.upper()
        if upper != compact:
            changes.append("已将小写字母转换为大写")
        text = upper
    return text or None, changes


def _text(raw) -> str:
    """Any cell value as trimmed NFKC text (full-width digits and letters become ASCII)."""
    if isinstance(raw, str):
        return unicodedata.normalize("NFKC", raw).translate(INVISIBLE).strip()
    if isinstance(raw, bool):
        return "TRUE" if raw else "FALSE"
    if isinstance(raw, (int, float)):
        return _number_text(raw)
    if isinstance(raw, dt.datetime):
        return raw.date().isoformat() if raw.time() == dt.time() else raw.isoformat(sep=" ")
    if isinstance(raw, (dt.date, dt.time)):
        return raw.isoformat()
    return str(raw).strip()


def _number_text(raw) -> str:
    """12.0 -> "12"; at most 15 significant digits, as Excel shows them (the rest were never stored)."""
    if isinstance(raw, int):
        return str(raw)
    if raw.is_integer() and abs(raw) < 1e15:
        return str(int(raw))
    return f"{raw:.15G}"


def _extension(filename: str) -> str:
    name = filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    return "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.1f}MB" if n >= 1024 * 1024 else f"{max(n // 1024, 1)}KB"


def _bad_type() -> SheetRefused:
    return SheetRefused("无法识别的文件类型：请上传Excel（.xlsx/.xls）、WPS、LibreOffice（.ods）表格或CSV文件",
                        "bad_file_type")


def _too_many_rows() -> SheetRefused:
    return SheetRefused(f"数据超过{MAX_ROWS}行的上限，请拆分成多个文件分批导入", "too_many_rows")


# ---------------------------------------------------------------- annotated error workbook

def annotate(rows: list[Row], issues: list[Issue], columns: list[Column], title: str = "校验结果") -> bytes:
    """The uploaded rows at their original row numbers, bad cells red with comments, cells accepted after
    normalising yellow with a comment saying what was changed, plus a "错误说明" column (errors first, then the
    notices as 提示).

    The header stays in row 1 and every value is a text cell, so the file can be corrected and uploaded again.
    Linear in rows + issues: one pass groups them by cell and by row."""
    wb = Workbook()
    ws = wb.active
    ws.title = _sheet_title(title)
    last_row = max([1] + [r.number for r in rows] + [i.row for i in issues])
    _setup_sheet(ws, columns, last_row)
    for row in rows:
        for c, col in enumerate(columns, 1):
            _text_cell(ws.cell(row.number, c), row.values.get(col.name))
    _mark_issues(ws, issues, columns, [n for row in rows for n in row.notices])
    return _save(wb)


def _mark_issues(ws, issues: list[Issue], columns: list[Column], notices: list[Issue] = ()) -> None:
    index = {col.name: i for i, col in enumerate(columns, 1)}
    note_col = len(columns) + 1
    head = ws.cell(1, note_col, ERROR_COLUMN)
    head.font = Font(bold=True, color="C00000")
    head.fill = HEADER_FILL
    ws.column_dimensions[get_column_letter(note_col)].width = 60
    by_cell: dict[tuple[int, int], list[str]] = {}
    by_row: dict[int, list[str]] = {}
    for issue in issues:
        by_row.setdefault(issue.row, []).append(issue.message)
        if issue.column in index:
            by_cell.setdefault((issue.row, index[issue.column]), []).append(issue.message)
    noted: dict[tuple[int, int], list[str]] = {}
    for notice in notices:
        by_row.setdefault(notice.row, []).append("提示：" + notice.message)
        if notice.column in index:
            noted.setdefault((notice.row, index[notice.column]), []).append("提示：" + notice.message)
    for (r, c), messages in noted.items():
        if (r, c) not in by_cell:
            cell = ws.cell(r, c)
            cell.fill = NOTICE_FILL
            cell.comment = Comment("\n".join(messages), "校验")
    for (r, c), messages in by_cell.items():
        cell = ws.cell(r, c)
        cell.fill = ERROR_FILL
        cell.comment = Comment("\n".join(messages + noted.get((r, c), [])), "校验")
    error_rows = {i.row for i in issues}
    for r, messages in by_row.items():
        cell = ws.cell(r, note_col)
        _text_cell(cell, "；".join(messages))
        cell.font = Font(color="C00000" if r in error_rows else "7F6000")


def _text_cell(cell, value: str | None) -> None:
    """A string cell even when it starts with "=" (openpyxl would write a formula) or looks like a number."""
    cell.number_format = TEXT_FORMAT
    if value is None:
        return
    cell.value = value
    cell.data_type = "s"


def _sheet_title(title: str) -> str:
    cleaned = re.sub(r"[\[\]:*?/\\]", "_", title).strip("'") or "Sheet1"
    return cleaned[:31]


def _save(wb: Workbook) -> bytes:
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()

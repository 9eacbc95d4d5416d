"""Import spreadsheets: template, strict reader (by content, long IDs never repaired), annotated errors.

Pure functions: no app fixture. LibreOffice round trips run when `soffice` is installed."""
import csv
import datetime as dt
import io
import shutil
import subprocess
import uuid
import zipfile

import pytest
from openpyxl import Workbook, load_workbook

from app.spreadsheets import (MAX_ROWS, Column, Issue, Row, SheetRefused, annotate, build_template, name_problem,
                              read_table)

ADMISSION = [
    Column("姓名"),
    Column("学籍号", kind="id", width=24),
    Column("中学阶段", required=False, kind="choice", choices=("初中", "高中")),
]
CLASSES = [Column("学籍号", kind="id"), Column("姓名"), Column("班级")]
HEADER = [c.name for c in ADMISSION]
XJH = "G410102201203225150"
SOFFICE_MISSING = "LibreOffice (soffice) is not installed; .ci/run installs libreoffice-calc-nogui"


def xlsx_bytes(rows, extra_sheet=None, base=None) -> bytes:
    """Rows written from A1 (header first) with openpyxl, optionally into a template and with a 2nd sheet."""
    wb = load_workbook(io.BytesIO(base)) if base else Workbook()
    ws = wb.worksheets[0]
    for r, row in enumerate(rows, 1):
        for c, value in enumerate(row, 1):
            cell = ws.cell(r, c, value)
            if isinstance(value, str):
                cell.data_type = "s"        # "=1+1" stays text, as a user's typed value would
    if extra_sheet:
        other = wb.create_sheet("其他", 1)
        for row in extra_sheet:
            other.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def csv_bytes(rows, encoding="utf-8-sig") -> bytes:
    buf = io.StringIO(newline="")
    csv.writer(buf).writerows(rows)
    return buf.getvalue().encode(encoding)


def refused(data, filename, columns=ADMISSION, **kw) -> SheetRefused:
    with pytest.raises(SheetRefused) as info:
        read_table(data, filename, columns, **kw)
    assert info.value.status == 422
    return info.value


def codes(issues):
    return [(i.row, i.column, i.code) for i in issues]


# ---------------------------------------------------------------- 1. template

def test_template_layout():
    data = build_template(ADMISSION, "录取名单", ["请勿修改表头", "学籍号请按文本填写"])
    wb = load_workbook(io.BytesIO(data))
    assert wb.sheetnames[:2] == ["录取名单", "填写说明"]
    ws = wb["录取名单"]
    assert [c.value for c in ws[1]] == HEADER
    assert all(c.font.b for c in ws[1])
    assert ws.freeze_panes == "A2"
    assert ws.column_dimensions["B"].width == 24
    for ref in ("A2", "B2", "B5001", "C5001"):
        assert ws[ref].number_format == "@", ref
    [dv] = ws.data_validations.dataValidation
    assert dv.type == "list" and dv.formula1 == '"初中,高中"'
    assert str(dv.sqref) == "C2:C5001"
    lines = [" ".join(str(v) for v in row if v) for row in wb["填写说明"].iter_rows(values_only=True)]
    assert "请勿修改表头" in lines and "学籍号请按文本填写" in lines
    assert "学籍号 必填" in " | ".join(lines)
    assert any(line.startswith("中学阶段 选填 可选值：初中、高中") for line in lines)


def test_untouched_template_reads_empty():
    data = build_template(ADMISSION, "录取名单", [])
    assert read_table(data, "录取名单.xlsx", ADMISSION) == ([], [])


def test_template_long_choice_list_goes_to_hidden_sheet():
    columns = [Column("班级", kind="choice", choices=tuple(f"{i}班,实验" for i in range(60)))]
    wb = load_workbook(io.BytesIO(build_template(columns, "分班", [])))
    assert wb["选项"].sheet_state == "hidden"
    [dv] = wb.worksheets[0].data_validations.dataValidation
    assert dv.formula1 == "'选项'!$A$1:$A$60"


# ---------------------------------------------------------------- 2. round trip and normalisation

def test_filled_template_round_trip_normalises(tmp_path):
    template = build_template(ADMISSION, "录取名单", [])
    data = xlsx_bytes([
        HEADER,
        ["张三", XJH, "初中"],
        [" 李四\u3000", "Ｇ４１０１０２２０１２０３２２５１５ｘ", "高中"],   # full-width digits, lowercase x
        [None, None, None],                                                # empty row in the middle
        ["王 五", " G410102 2012 0322 515X ", None],
        ["", "  ", None],                                                  # trailing blank rows
        [None, None, None],
    ], extra_sheet=[["姓名"], ["不该读到"]], base=template)
    (tmp_path / "filled.xlsx").write_bytes(data)
    rows, issues = read_table((tmp_path / "filled.xlsx").read_bytes(), "filled.xlsx", ADMISSION)
    # spaces inside a number are refused, never silently removed (the registrar may have typed two numbers)
    assert [(i.row, i.column, i.code) for i in issues] == [(5, "学籍号", "inner_separator")]
    assert "中间有空格" in issues[0].message
    assert rows == [
        Row(2, {"姓名": "张三", "学籍号": XJH, "中学阶段": "初中"}),
        Row(3, {"姓名": "李四", "学籍号": "G41010220120322515X", "中学阶段": "高中"}),
        Row(5, {"姓名": "王 五", "学籍号": "G410102 2012 0322 515X", "中学阶段": None}),
    ]
    # accepted, but the registrar is told what was changed (notices, not errors)
    assert rows[0].notices == []
    assert [(n.row, n.column, n.code, n.level) for n in rows[1].notices] == [
        (3, "姓名", "normalised", "notice"), (3, "学籍号", "normalised", "notice")]
    assert "已将全角空格或不间断空格转换为普通空格" in rows[1].notices[0].message
    assert "已将全角字符转换为半角" in rows[1].notices[1].message
    assert "已将小写字母转换为大写" in rows[1].notices[1].message
    assert rows[1].notices[1].message.endswith("按“G41010220120322515X”读取")
    assert "已去除首尾空格" in rows[2].notices[0].message


def test_numbers_and_dates_in_text_columns():
    data = xlsx_bytes([["学籍号", "姓名", "班级"], [XJH, "张三", 3.0], [XJH, "李四", dt.date(2024, 9, 1)]])
    rows, issues = read_table(data, "c.xlsx", CLASSES)
    assert issues == []
    assert [r.values["班级"] for r in rows] == ["3", "2024-09-01"]


def test_choice_and_required_issues():
    data = xlsx_bytes([HEADER, ["张三", None, "小学"], [None, XJH, None]])
    rows, issues = read_table(data, "a.xlsx", ADMISSION)
    assert len(rows) == 2
    assert codes(issues) == [(2, "学籍号", "required"), (2, "中学阶段", "bad_choice"), (3, "姓名", "required")]
    assert issues[1].message == "第2行“中学阶段”：“小学”不是可选的值，应为以下之一：初中、高中"
    assert issues[0].message.startswith("第2行“学籍号”：")


def test_title_row_above_header_keeps_row_numbers():
    data = xlsx_bytes([["2026级录取名单"], HEADER, ["张三", XJH, "初中"]])
    rows, issues = read_table(data, "a.xlsx", ADMISSION)
    assert issues == [] and [r.number for r in rows] == [3]


# ---------------------------------------------------------------- 3. IDs typed as numbers

@pytest.mark.parametrize("typed", [410102201203225150, 4.1010220120322515e+17, "4.10102E+17", "4.10102e+17",
                                   "410102201203225000.0"])
def test_id_typed_as_number_is_reported_not_repaired(typed):
    data = xlsx_bytes([["学籍号", "姓名", "班级"], [XJH, "张三", "1"], [typed, "李四", "1"]])
    rows, issues = read_table(data, "c.xlsx", CLASSES)
    assert codes(issues) == [(3, "学籍号", "id_as_number")]
    assert issues[0].message.startswith("第3行“学籍号”：")
    assert "文本格式" in issues[0].message and "不会自动修复" in issues[0].message
    assert "已被Excel/WPS转换成数字" in issues[0].message or "丢失位数" in issues[0].message
    value = rows[1].values["学籍号"]
    assert value != "410102201203225150" and not value.isdigit()   # never turned back into a plausible ID


def test_short_number_in_id_column_is_still_reported():
    data = xlsx_bytes([["学籍号", "姓名", "班级"], [12345, "张三", "1"]])
    [issue] = read_table(data, "c.xlsx", CLASSES)[1]
    assert issue.code == "id_as_number" and "开头的0" in issue.message


# ---------------------------------------------------------------- 4. header

@pytest.mark.parametrize("header", [
    ["姓名", "中学阶段"],                          # missing
    ["学生姓名", "学籍号", "中学阶段"],              # renamed
    ["学籍号", "姓名", "中学阶段"],                  # reordered
    ["姓名", "学籍号", "中学阶段", "备注"],           # extra
    ["姓名"],                                      # required column cut off
    [],                                            # no header at all
])
def test_bad_header_is_refused(header):
    err = refused(xlsx_bytes([header, ["张三", XJH, "初中"]]), "a.xlsx")
    assert err.code == "bad_header"
    assert "模板列应为：姓名、学籍号、中学阶段（请使用下载的模板，不要修改列）" in err.message
    if header:
        assert "、".join(header[:2]) in err.message


def test_header_cells_are_normalised_and_optional_trailing_column_may_be_absent():
    data = xlsx_bytes([[" 姓 名", "学籍号\n"], ["张三", XJH, "这一列没有表头，忽略"]])
    rows, issues = read_table(data, "a.xlsx", ADMISSION)
    assert issues == []
    assert rows == [Row(2, {"姓名": "张三", "学籍号": XJH, "中学阶段": None})]


# ---------------------------------------------------------------- 5. refusals by content

def zip_with(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buf.getvalue()


def test_empty_and_too_large_files():
    assert refused(b"", "a.xlsx").code == "empty_file"
    data = xlsx_bytes([HEADER, ["张三", XJH, "初中"]])
    assert refused(data, "a.xlsx", max_bytes=1000).code == "file_too_large"


@pytest.mark.parametrize("data, filename", [
    (b"#!/bin/sh\nrm -rf /\n", "名单.xlsx"),                         # a script named .xlsx
    ("姓名,学籍号\n张三,G1\n".encode(), "名单.xls"),                # CSV named .xls
    (b"<html><table><tr><td>1</td></tr></table></html>", "a.ods"),
    (zip_with({"[Content_Types].xml": b'<Types><Override ContentType="application/vnd.openxmlformats-'
                                      b'officedocument.wordprocessingml.document.main+xml"/></Types>',
               "word/document.xml": b"<w:document/>"}), "a.xlsx"),  # a .docx
    (zip_with({"readme.txt": b"hello"}), "a.xlsx"),                  # a plain zip
    (zip_with({"mimetype": b"application/vnd.oasis.opendocument.text"}), "a.ods"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01", "a.csv"),  # an image named .csv
    ("姓名,学籍号\n".encode(), "a.pdf"),                             # text, but not a .csv/.txt name
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600, "a.xls"),  # a broken OLE2 file
    (b"PK\x03\x04 not really a zip", "a.xlsx"),
])
def test_wrong_content_is_refused(data, filename):
    assert refused(data, filename).code == "bad_file_type"


def test_zip_bomb_is_refused_from_the_directory_alone(tmp_path, monkeypatch):
    path = tmp_path / "bomb.xlsx"
    chunk = b"\x00" * (1024 * 1024)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", b"spreadsheetml")
        with zf.open("xl/worksheets/sheet1.xml", "w") as member:
            for _ in range(300):
                member.write(chunk)
    data = path.read_bytes()
    assert len(data) < 2 * 1024 * 1024

    def no_inflating(*args, **kwargs):
        raise AssertionError("the bomb check must not decompress")
    monkeypatch.setattr(zipfile.ZipExtFile, "read", no_inflating)
    assert refused(data, "bomb.xlsx").code == "zip_bomb"


def test_high_compression_ratio_alone_is_a_bomb():
    data = zip_with({"[Content_Types].xml": b"spreadsheetml", "a.xml": b"\x00" * (20 * 1024 * 1024)})
    assert refused(data, "a.xlsx").code == "zip_bomb"


def test_too_many_rows():
    data = csv_bytes([HEADER] + [["张三", XJH, "初中"]] * (MAX_ROWS + 1))
    assert refused(data, "a.csv").code == "too_many_rows"


# ---------------------------------------------------------------- 6. CSV and other programs' files

@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-8", "gb18030"])
def test_csv_encodings(encoding):
    data = csv_bytes([HEADER, ["张三", XJH, "初中"], ["李四", "4.10102E+17", "高中"]], encoding)
    rows, issues = read_table(data, "名单.csv", ADMISSION)
    assert rows[0] == Row(2, {"姓名": "张三", "学籍号": XJH, "中学阶段": "初中"})
    assert codes(issues) == [(3, "学籍号", "id_as_number")]


def test_excel_unicode_text_is_read():
    text = "".join("\t".join(row) + "\r\n" for row in [HEADER, ["张三", XJH, "初中"]])
    rows, issues = read_table(text.encode("utf-16"), "名单.txt", ADMISSION)
    assert issues == [] and rows[0].values["学籍号"] == XJH


def soffice_convert(src, fmt, outdir):
    """Convert with LibreOffice in its own throw-away profile; return the converted file's bytes."""
    if not shutil.which("soffice"):
        pytest.skip(SOFFICE_MISSING)
    profile = f"/tmp/lo-profile-{uuid.uuid4().hex}"
    outdir.mkdir(exist_ok=True)
    cmd = ["soffice", "--headless", f"-env:UserInstallation=file://{profile}"]
    if src.suffix == ".csv":
        cmd.append("--infilter=CSV:44,34,76,1")        # comma, double quote, UTF-8, from line 1
    cmd += ["--convert-to", fmt, "--outdir", str(outdir), str(src)]
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return (outdir / f"{src.stem}.{fmt}").read_bytes()


@pytest.mark.parametrize("fmt", ["xlsx", "xls", "ods"])
def test_libreoffice_turns_csv_ids_into_numbers(tmp_path, fmt):
    src = tmp_path / "名单.csv"
    src.write_bytes(csv_bytes([HEADER, ["张三", "410102201203225150", "初中"], ["李四", XJH, "高中"]], "utf-8"))
    data = soffice_convert(src, fmt, tmp_path / "out")
    rows, issues = read_table(data, f"名单.{fmt}", ADMISSION)
    assert codes(issues) == [(2, "学籍号", "id_as_number")]
    assert rows[1] == Row(3, {"姓名": "李四", "学籍号": XJH, "中学阶段": "高中"})


@pytest.mark.parametrize("fmt", ["xlsx", "xls", "ods"])
def test_template_saved_by_libreoffice_keeps_ids_as_text(tmp_path, fmt):
    template = build_template(ADMISSION, "录取名单", ["请勿修改表头"])
    src = tmp_path / "filled.xlsx"
    src.write_bytes(xlsx_bytes([HEADER, ["张三", "410102201203225150", "初中"], ["李四", XJH, None]], base=template))
    data = soffice_convert(src, fmt, tmp_path / "out")
    rows, issues = read_table(data, f"filled.{fmt}", ADMISSION)
    assert issues == []
    assert [r.values["学籍号"] for r in rows] == ["410102201203225150", XJH]


# ---------------------------------------------------------------- 7. annotated error workbook

def test_annotate_marks_cells_and_rows():
    data = xlsx_bytes([
        ["学籍号", "姓名", "班级"],
        [XJH, "张三", "1"],
        [4.1010220120322515e+17, "李四", None],
        [None, None, None],
        ["410102201203225150", "=1+1", "2"],
    ])
    rows, issues = read_table(data, "c.xlsx", CLASSES)
    assert codes(issues) == [(3, "学籍号", "id_as_number"), (3, "班级", "required")]
    issues += [Issue(5, "姓名", "name_mismatch", "第5行“姓名”：学籍号与姓名不符"),
               Issue(5, None, "duplicate", "第5行：与第2行重复"),
               Issue(5, "不存在的列", "other", "第5行：其他问题")]
    wb = load_workbook(io.BytesIO(annotate(rows, issues, CLASSES)))
    ws = wb.worksheets[0]
    assert ws.title == "校验结果"
    assert [c.value for c in ws[1]] == ["学籍号", "姓名", "班级", "错误说明"]
    assert ws["A2"].value == XJH and ws["A2"].fill.fill_type is None and ws["A2"].comment is None
    assert ws["D2"].value is None
    assert ws["A3"].fill.fgColor.rgb.endswith("FFC7CE") and "转换成了数字" in ws["A3"].comment.text
    assert ws["C3"].fill.fgColor.rgb.endswith("FFC7CE") and ws["C3"].comment.text == issues[1].message
    assert ws["B3"].fill.fill_type is None
    assert ws["D3"].value == "；".join(i.message for i in issues[:2])
    assert ws["A4"].value is None and ws["D4"].value is None                 # the blank row stays blank
    assert ws["A5"].value == "410102201203225150" and ws["A5"].data_type == "s"
    assert ws["A5"].number_format == "@"
    assert ws["B5"].value == "=1+1" and ws["B5"].data_type == "s"           # text, not a formula
    assert ws["B5"].comment.text == "第5行“姓名”：学籍号与姓名不符"
    assert ws["D5"].value == "第5行“姓名”：学籍号与姓名不符；第5行：与第2行重复；第5行：其他问题"


def test_annotated_file_can_be_uploaded_again():
    rows = [Row(2, {"姓名": "张三", "学籍号": XJH, "中学阶段": "初中"}),
            Row(4, {"姓名": "李四", "学籍号": "410102201203225150", "中学阶段": None})]
    issues = [Issue(4, "学籍号", "not_found", "第4行“学籍号”：学籍号不存在")]
    data = annotate(rows, issues, ADMISSION, title="录取名单")
    assert read_table(data, "录取名单-错误.xlsx", ADMISSION) == (rows, [])


# ---------------------------------------------------------------- 8. formulas, names, notices

NAMED = [Column("姓名", kind="name"), Column("学籍号", kind="id", width=24),
         Column("中学阶段", required=False, kind="choice", choices=("初中", "高中"))]


def with_formulas(rows, cached=None) -> bytes:
    """openpyxl writes a value starting with "=" as a real formula (no cached value); `cached` {formula: value}
    then adds the cached value Excel or LibreOffice would have stored, and "SHARED" becomes a shared formula."""
    wb = Workbook()
    ws = wb.active
    for row in rows:
        ws.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    if not cached:
        return buf.getvalue()
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "xl/worksheets/sheet1.xml":
                for formula, value in cached.items():
                    data = data.replace(f"<f>{formula}</f><v />".encode(), value.encode())
            zf.writestr(info, data)
    return out.getvalue()


def test_formula_cells_are_reported_never_read_as_their_value_or_as_empty():
    data = with_formulas([
        HEADER,
        ["张三", XJH, "初中"],
        ["=1+1", '=A2&""', "高中"],                          # typed formulas, no cached value: not "required"
        ["李四", "=B2", None],                               # cached value (Excel/LibreOffice keep one)
        ["王五", "=B3", None],                               # shared formula, no text of its own
        ["=A2", None, None],                                 # a row of nothing but a formula is not empty
    ], cached={"B2": f'<f>B2</f><v>{XJH}</v>', "B3": '<f t="shared" ref="B5:B5" si="0"/><v>G1</v>'})
    rows, issues = read_table(data, "a.xlsx", NAMED)
    assert codes(issues) == [(3, "姓名", "formula"), (3, "学籍号", "formula"), (4, "学籍号", "formula"),
                             (5, "学籍号", "formula"), (6, "姓名", "formula"), (6, "学籍号", "required")]
    assert issues[0].message == ("第3行“姓名”：单元格是公式（=1+1），系统不计算公式，也不读取公式的结果；"
                                 "请直接填写内容（可复制后“选择性粘贴→仅粘贴数值”）")
    assert rows[1].values == {"姓名": "=1+1", "学籍号": '=A2&""', "中学阶段": "高中"}
    assert rows[2].values["学籍号"] == "=B2"                  # the cached ID is never taken
    assert "共享公式" in issues[3].message
    assert [r.number for r in rows] == [2, 3, 4, 5, 6]


def test_formula_in_an_ods_file_is_reported():
    body = ('<table:table-row><table:table-cell office:value-type="string"><text:p>姓名</text:p></table:table-cell>'
            '<table:table-cell office:value-type="string"><text:p>学籍号</text:p></table:table-cell></table:table-row>'
            '<table:table-row table:number-rows-repeated="2"><table:table-cell office:value-type="string"><text:p>张三'
            '</text:p></table:table-cell><table:table-cell office:value-type="string"><text:p>' + XJH +
            '</text:p></table:table-cell></table:table-row><table:table-row><table:table-cell '
            'office:value-type="string"><text:p>李四</text:p></table:table-cell><table:table-cell '
            'table:formula="of:=[.B2]" office:value-type="string" office:string-value="' + XJH + '"><text:p>' + XJH +
            '</text:p></table:table-cell></table:table-row>')
    content = ('<?xml version="1.0" encoding="UTF-8"?><office:document-content '
               'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
               'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
               'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2"><office:body>'
               '<office:spreadsheet><table:table table:name="录取名单">' + body +
               '</table:table></office:spreadsheet></office:body></office:document-content>')
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        zf.writestr("META-INF/manifest.xml", '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:'
                    'xmlns:manifest:1.0"><manifest:file-entry manifest:full-path="content.xml" '
                    'manifest:media-type="text/xml"/></manifest:manifest>')
        zf.writestr("content.xml", content, compress_type=zipfile.ZIP_DEFLATED)
    rows, issues = read_table(buf.getvalue(), "a.ods", NAMED)
    assert [r.values["学籍号"] for r in rows] == [XJH, XJH, "=[.B2]"]          # repeated rows counted
    assert codes(issues) == [(4, "学籍号", "formula")]


@pytest.mark.parametrize("name", ["=1+1", "+86", "-a", "@x", "<script>", "张3", "张三1", "李\t四", "王<b>", "·艾力",
                                  "艾力·", "买买提··艾力", "张_三", "SUM(A1)"])
def test_names_no_name_has_are_refused(name):
    data = xlsx_bytes([HEADER, [name, XJH, None]])
    rows, issues = read_table(data, "a.xlsx", NAMED)
    assert codes(issues) == [(2, "姓名", "bad_name")], name
    assert issues[0].message.startswith(f"第2行“姓名”：“{name}”")
    assert name_problem(name)


def test_names_people_have_are_accepted():
    names = ["张三", "欧阳娜娜", "买买提·艾力", "阿依古丽・买买提", "John Smith", "O'Neil", "Jean-Pierre", "José Álvarez",
             "𠀾明"]
    data = xlsx_bytes([HEADER] + [[n, XJH, None] for n in names])
    rows, issues = read_table(data, "a.xlsx", NAMED)
    assert issues == [] and [r.values["姓名"] for r in rows] == names
    assert "数字" in name_problem("张3") and "公式" in name_problem("=1+1") and "“<”" in name_problem("<a>")


def test_normalised_cells_are_notices_in_the_annotated_workbook():
    data = xlsx_bytes([HEADER, ["张三", XJH, None], ["\u00a0李四 ", "\u200bＧ４１０１０２２０１２０３２２５１５０", " 高中"]])
    rows, issues = read_table(data, "a.xlsx", NAMED)
    assert issues == [] and rows[1].values == {"姓名": "李四", "学籍号": XJH, "中学阶段": "高中"}
    notes = {n.column: n.message for n in rows[1].notices}
    assert notes == {
        "姓名": "第3行“姓名”：已将全角空格或不间断空格转换为普通空格，已去除首尾空格，按“李四”读取",
        "学籍号": "第3行“学籍号”：已将全角字符转换为半角，已删除不可见字符（零宽空格等），按“" + XJH + "”读取",
        "中学阶段": "第3行“中学阶段”：已去除首尾空格，按“高中”读取"}
    wb = load_workbook(io.BytesIO(annotate(rows, [Issue(2, "姓名", "name_mismatch", "第2行“姓名”：不符")], NAMED)))
    ws = wb.worksheets[0]
    assert ws["B3"].fill.fgColor.rgb.endswith("FFF2CC") and "已将全角字符转换为半角" in ws["B3"].comment.text
    assert ws["B3"].value == XJH and ws["B2"].comment is None
    assert ws["A2"].fill.fgColor.rgb.endswith("FFC7CE")                     # errors stay red
    assert ws["D3"].value.startswith("提示：第3行“姓名”") and "已将全角字符转换为半角" in ws["D3"].value
    assert ws["D2"].value == "第2行“姓名”：不符"
    assert read_table(annotate(rows, [], NAMED), "again.xlsx", NAMED)[0] == rows      # uploads again as read


# ---------------------------------------------------------------- 9. size

def test_twenty_thousand_rows():
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("录取名单")
    ws.append(HEADER)
    for i in range(20_000):
        ws.append([f"学生{i}", f"G41010220120322{i:04d}", "初中" if i % 2 else "高中"])
    buf = io.BytesIO()
    wb.save(buf)
    rows, issues = read_table(buf.getvalue(), "big.xlsx", ADMISSION)
    assert len(rows) == 20_000 and issues == []
    assert rows[-1].number == 20_001

"""Evidence files are decoded, not only sniffed (issue 15): each hostile file and name is refused or cleaned,
and nothing is written to disk unless the row is saved."""
import io
import os
import struct
import zlib

import pytest
from sqlalchemy import select

from app import evidence
from app.errors import RuleError
from app.extensions import db
from models.requests import Evidence
from tests.conftest import api_headers
from tests.test_workflow import PDF, PNG, upload


def jpeg(width=32, height=24) -> bytes:
    from PIL import Image
    out = io.BytesIO()
    Image.new("RGB", (width, height), (20, 120, 200)).save(out, "JPEG", quality=80)
    return out.getvalue()


def png_bomb(width=20000, height=20000) -> bytes:
    """A well-formed 1-bit PNG of 400 megapixels in a few tens of kilobytes: it decodes to gigabytes."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def pdf_with(action: str) -> bytes:
    from pypdf import PdfWriter
    from pypdf.generic import ArrayObject, DictionaryObject, NameObject, TextStringObject
    writer, out = PdfWriter(), io.BytesIO()
    writer.add_blank_page(width=595, height=842)
    if action == "javascript":                          # a document-level script in the /Names tree
        script = writer._add_object(DictionaryObject({NameObject("/S"): NameObject("/JavaScript"),
                                                      NameObject("/JS"): TextStringObject("app.alert('x');")}))
        writer._root_object[NameObject("/Names")] = DictionaryObject({NameObject("/JavaScript"): DictionaryObject({
            NameObject("/Names"): ArrayObject([TextStringObject("x"), script])})})
    elif action == "openaction":
        writer._root_object[NameObject("/OpenAction")] = DictionaryObject({
            NameObject("/S"): NameObject("/Launch"), NameObject("/F"): TextStringObject("calc.exe")})
    elif action == "aa":
        writer.pages[0][NameObject("/AA")] = DictionaryObject({NameObject("/O"): DictionaryObject({
            NameObject("/S"): NameObject("/JavaScript"), NameObject("/JS"): TextStringObject("app.alert(1)")})})
    elif action == "encrypted":
        writer.encrypt("secret", algorithm="AES-128")
    writer.write(out)
    return out.getvalue()


def stored_files(app):
    folder = os.path.join(app.config["UPLOAD_FOLDER"], "evidence")
    return set(os.listdir(folder)) if os.path.isdir(folder) else set()


@pytest.fixture
def h(client):
    return api_headers(client, "school_a1_clerk")


def refused(resp, code):
    body = resp.get_json()
    assert resp.status_code == 422 and body["code"] == code, body
    return body["message"]


# --- hostile contents ---------------------------------------------------------------------------------------

def test_jpeg_header_followed_by_html_is_refused(app, world, client, h):
    before = stored_files(app)
    fake = b"\xff\xd8\xff\xe0" + b"<html><script>alert(document.cookie)</script></html>" * 20
    message = refused(upload(client, h, world.student_of("a1"), fake, "photo.jpg"), "bad_image")
    assert "无法解码" in message
    assert stored_files(app) == before


def test_a_decompression_bomb_is_refused_before_decoding(app, world, client, h):
    bomb = png_bomb()
    assert len(bomb) < 2 * 1024 * 1024
    message = refused(upload(client, h, world.student_of("a1"), bomb, "scan.png"), "image_too_large")
    assert "20000×20000" in message


def test_a_truncated_image_is_refused(app, world, client, h):
    data = jpeg(400, 300)
    refused(upload(client, h, world.student_of("a1"), data[: len(data) // 2], "half.jpg"), "bad_image")
    refused(upload(client, h, world.student_of("a1"), PNG[:-20], "half.png"), "bad_image")


@pytest.mark.parametrize("image", ["jpeg", "png"])
def test_a_payload_after_the_image_end_is_refused(app, world, client, h, image):
    data = jpeg() if image == "jpeg" else PNG
    payload = b"<?php system($_GET['c']); ?>" + b"A" * 100
    message = refused(upload(client, h, world.student_of("a1"), data + payload, f"x.{image}"), "trailing_data")
    assert "附带了其他数据" in message
    # a few bytes of padding, as some writers leave, are fine
    assert upload(client, h, world.student_of("a1"), data + b"\x00" * 4, f"x.{image}").status_code == 201


def test_a_phone_photo_with_a_second_image_after_the_first_is_accepted(app, world, client, h):
    """Multi-Picture Format (depth map, preview) puts complete JPEGs after the first image's EOI."""
    assert upload(client, h, world.student_of("a1"), jpeg() + jpeg(8, 8), "IMG_0001.jpg").status_code == 201


def test_an_exif_thumbnail_inside_the_jpeg_is_not_mistaken_for_its_end(app, world):
    from PIL import Image
    thumb = jpeg(8, 8)
    app1 = b"Exif\x00\x00" + thumb                    # an EOI marker inside APP1, before the real image data
    body = jpeg()
    data = body[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + body[2:]
    assert evidence.check_image(data, "image/jpeg", "a.jpg") == (32, 24)
    assert Image.open(io.BytesIO(data)).size == (32, 24)


@pytest.mark.parametrize("kind,code", [("javascript", "active_pdf"), ("openaction", "active_pdf"),
                                       ("aa", "active_pdf"), ("encrypted", "encrypted_pdf")])
def test_active_or_encrypted_pdfs_are_refused(app, world, client, h, kind, code):
    refused(upload(client, h, world.student_of("a1"), pdf_with(kind), "证明.pdf"), code)


def test_a_pdf_that_does_not_parse_is_refused(app, world, client, h):
    refused(upload(client, h, world.student_of("a1"), b"%PDF-1.4\n<html>not a pdf</html>\n", "a.pdf"),
            "bad_pdf")


def test_a_plain_pdf_and_a_pdf_opening_at_a_page_are_accepted(app, world, client, h):
    from pypdf import PdfWriter
    from pypdf.generic import ArrayObject, NameObject, NumberObject
    assert upload(client, h, world.student_of("a1"), PDF, "证明.pdf").status_code == 201
    writer, out = PdfWriter(), io.BytesIO()
    writer.add_blank_page(width=595, height=842)
    writer._root_object[NameObject("/OpenAction")] = ArrayObject([writer.pages[0].indirect_reference,
                                                                  NameObject("/Fit")])
    writer.write(out)
    assert upload(client, h, world.student_of("a1"), out.getvalue(), "scan.pdf").status_code == 201


# --- names ------------------------------------------------------------------------------------------------

def kept_name(app, resp):
    assert resp.status_code == 201, resp.get_json()
    with app.app_context():
        return db.session.get(Evidence, resp.get_json()["result"]["id"]).original_name


@pytest.mark.parametrize("name,kept", [
    ("proof.jpg.php", "proof.png"),                  # the detected type's extension, not the claimed ones
    ("C:\\fakepath\\诊断证明.jpg", "诊断证明.png"),    # a browser's Windows path: basename only
    ("/etc/passwd", "passwd.png"),
    ("proof\u202egpj.exe", "proofgpj.png"),           # right-to-left override removed, extension replaced
    ("户口\u200b本\u2066.png", "户口本.png"),           # zero-width space and a bidi isolate removed
    ("医院证明.png", "医院证明.png"),                   # Chinese names stay readable
    (".png", "证明材料.png"),
])
def test_names_are_cleaned(app, world, client, h, name, kept):
    assert kept_name(app, upload(client, h, world.student_of("a1"), PNG, name)) == kept


def test_the_jpeg_extension_follows_the_content(app, world, client, h):
    assert kept_name(app, upload(client, h, world.student_of("a1"), jpeg(), "proof.jpg.php")) == "proof.jpg"
    assert kept_name(app, upload(client, h, world.student_of("a1"), PDF, "report.jpg")) == "report.pdf"


def test_a_name_with_nul_is_refused(app, world, client, h):
    assert "NUL" in evidence_refusal(lambda: evidence.clean_name("proof.jpg\x00.php", ".png"))
    before = stored_files(app)
    resp = upload(client, h, world.student_of("a1"), PNG, "proof.jpg\x00.php")
    # refused by the evidence rule, or earlier by the request's NUL guard: never stored under that name
    assert resp.status_code in (400, 422)
    with app.app_context():
        assert not db.session.scalars(select(Evidence).where(Evidence.original_name.like("%php%"))).all()
    assert stored_files(app) == before


def evidence_refusal(call) -> str:
    with pytest.raises(RuleError) as exc:
        call()
    return exc.value.message


def test_the_download_uses_the_cleaned_name(app, world, client, as_user):
    from tests.test_workflow import file_change
    h = api_headers(client, "school_a1_clerk")
    sid = world.student_of("a1")
    eid = upload(client, h, sid, PNG, "C:\\fakepath\\诊断证明.jpg.php").get_json()["result"]["id"]
    with app.app_context():
        db.session.get(Evidence, eid)
    resp = file_change(client, h, sid, {"name": "李改名"})
    assert resp.status_code in (200, 201)
    page = as_user("school_a1_clerk").get(f"/request/evidence/{eid}")
    assert page.status_code == 200
    disposition = page.headers["Content-Disposition"]
    assert disposition.startswith("attachment") and "fakepath" not in disposition and ".php" not in disposition
    assert "%E8%AF%8A%E6%96%AD%E8%AF%81%E6%98%8E.png" in disposition      # 诊断证明.png, RFC 5987


# --- when the file is written -------------------------------------------------------------------------------

def test_the_file_is_written_after_the_flush_and_removed_on_rollback(app, world):
    from models import School
    with app.test_request_context():
        school_id = world.schools["a1"]
        before = stored_files(app)
        row = evidence.store(db.session, io.BytesIO(PNG), "a.png", school_id)
        path = evidence.path_of(row)
        assert os.path.exists(path) and row.id is not None
        db.session.rollback()                           # the request failed after the upload
        assert not os.path.exists(path) and stored_files(app) == before
        row = evidence.store(db.session, io.BytesIO(PNG), "b.png", school_id)
        db.session.commit()
        assert os.path.exists(evidence.path_of(row))
        assert db.session.get(School, school_id) is not None


def test_a_failed_flush_writes_no_file(app, world, monkeypatch):
    with app.test_request_context():
        before = stored_files(app)
        with pytest.raises(Exception):
            evidence.store(db.session, io.BytesIO(PNG), "a.png", school_id=None)   # NOT NULL: the flush fails
        db.session.rollback()
        assert stored_files(app) == before


def test_check_image_serves_any_picture(app):
    """The same rules for the future student photo."""
    assert evidence.check_image(jpeg(), "image/jpeg", "photo.jpg") == (32, 24)
    with pytest.raises(RuleError) as exc:
        evidence.check_image(png_bomb(10000, 5000), "image/png", "photo.png")
    assert exc.value.code == "image_too_large"
    with pytest.raises(RuleError):
        evidence.check_image(jpeg(640, 480), "image/jpeg", "photo.jpg", max_pixels=100_000)

"""学生照片: one portrait per student, printed on the 学籍卡.

- Uploaded as JPEG or PNG, read and decoded exactly like evidence (app.evidence.read_upload and check_image: the
  size limit, here the setting photo.max_bytes; the pixel limit before decoding; full decoding; no data after the
  image's end).
- Kept in the national 学籍照片 format: 26×32 mm, so width:height = 13:16. The picture is turned upright by its EXIF
  orientation, centre-cropped to 13:16, resized to 390×480 px and saved as JPEG quality 85 without EXIF, ICC or
  any other metadata (a phone photo's GPS position never reaches the disk).
- Kept in the file store's "photos" area (app.filestore: UPLOAD_FOLDER/photos, or the database) under a random
  name, the name on student.photo. The file is written after the row's flush (the record rules refuse a finished
  or 小学 record there) in the same transaction, so it is gone if that rolls back; the replaced photo is deleted in
  it too, so its file is gone once the transaction commits (and kept if it rolls back).
- `may_set_photo` is the one check the student page asks before it shows the upload form and the routes ask
  before they act; `set_photo` is the one writer (web and REST), and it commits.
"""
import io
import re
import uuid

from flask import current_app
from sqlalchemy import select

from app import evidence, filestore, settings
from app.errors import RuleError
from app.service import service
from app.scoping import apply_scope
from models import School, Student

RATIO = (13, 16)                 # 26 mm × 32 mm
SIZE = (390, 480)                # 15 px per mm: prints sharp at 26×32 mm
QUALITY = 85
STORED = re.compile(r"^[0-9a-f]{32}\.jpg$")


def stored_name(student: Student) -> str | None:
    """The stored name of the student's photo, or None when there is none (or the name is not ours)."""
    name = student.photo
    return name if name and STORED.match(name) else None


def send(student: Student):
    """The student's photo as a response (never cached, never sniffed), or None when there is none."""
    resp = filestore.send("photos", stored_name(student), mimetype="image/jpeg", conditional=False, etag=False,
                          max_age=0)
    if resp is not None:
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Cache-Control"] = "private, no-cache"
        resp.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return resp


# --- who may: the record rules' own refusals, asked before anything is read --------------------------------------

def refusal(student: Student) -> RuleError | None:
    """Why this record takes no photo now (deleted, finished, 小学), in the words of the record rules; None if
    it may have one. The flush rules (app.students, app.rosters) refuse the write in any case."""
    from app.rosters import PRIMARY, primary_graduates_read_only
    from app.students import FINISHED
    if student.deleted_at is not None:
        return RuleError("该学籍已删除，不能上传照片", code="deleted")
    if student.stage == PRIMARY:
        try:
            primary_graduates_read_only(student, None)
        except RuleError as exc:
            return exc
    if student.status in FINISHED:
        return RuleError("已毕业（结业、肄业）学生的基本信息只读", code="read_only")
    return None


def may_set_photo(session, actor, student: Student | None) -> bool:
    """Whether `actor` may upload this student's photo now: the write permission on students (the routes'
    own permission), the record in the actor's scope (the routes load it scoped) and a record that takes
    changes. The student page shows the upload form only then."""
    if actor is None or student is None or not getattr(actor, "is_authenticated", False):
        return False
    if not current_app.appbuilder.sm.has_access("can_write", "Student"):
        return False
    if session.scalar(apply_scope(select(Student.id).where(Student.id == student.id), Student)) is None:
        return False
    return refusal(student) is None


# --- the picture ------------------------------------------------------------------------------------------------

def portrait(data: bytes, mime: str) -> bytes:
    """The checked upload as the stored portrait: upright, centre-cropped to 13:16, 390×480, JPEG q85, no EXIF."""
    from PIL import Image, ImageOps
    with Image.open(io.BytesIO(data), formats=[evidence.PILLOW_FORMAT[mime]]) as img:
        img = ImageOps.exif_transpose(img)
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            flat = Image.new("RGB", rgba.size, (255, 255, 255))      # transparent parts print as white paper
            flat.paste(rgba, mask=rgba.getchannel("A"))
            img = flat
        else:
            img = img.convert("RGB")
        width, height = img.size
        rw, rh = RATIO
        if width * rh > height * rw:                 # too wide: keep the full height
            crop_w, crop_h = max(1, height * rw // rh), height
        else:                                        # too tall: keep the full width
            crop_w, crop_h = width, max(1, width * rh // rw)
        left, top = (width - crop_w) // 2, (height - crop_h) // 2
        img = img.crop((left, top, left + crop_w, top + crop_h)).resize(SIZE, Image.Resampling.LANCZOS)
        out = io.BytesIO()
        img.save(out, "JPEG", quality=QUALITY, optimize=True)      # no exif=, icc_profile=: nothing carried over
        return out.getvalue()


def check_picture(data: bytes, shown: str) -> str:
    """A JPEG or PNG by content, decoded under the evidence rules; its MIME type, or RuleError."""
    kind = evidence.sniff(data[:16])
    if kind is None or kind[0] not in evidence.PILLOW_FORMAT:
        raise RuleError(f"文件“{shown}”不是JPG或PNG图片（按文件内容检查），请上传学生照片", code="bad_file_type")
    evidence.check_image(data, kind[0], shown)
    return kind[0]


# --- the one writer -------------------------------------------------------------------------------------------

@service
def set_photo(session, actor, student: Student, stream, filename: str | None) -> Student:
    """Check, crop and keep a new photo for `student` (already loaded within the actor's scope). Nothing
    is written on refusal; the replaced photo's file is gone once the commit is done."""
    refused = refusal(student)
    if refused is not None:
        raise refused
    if stream is None:
        raise RuleError("请选择照片文件（JPG或PNG）", code="file_required")
    county = session.scalar(select(School.county_code).where(School.id == student.school_id))
    limit = settings.get_int(session, "photo.max_bytes", county)
    filename = evidence.submitted_name(stream, filename)
    data, shown = evidence.read_upload(stream, filename, limit)
    mime = check_picture(data, shown)
    stored_bytes = portrait(data, mime)
    old = student.photo
    stored = f"{uuid.uuid4().hex}.jpg"
    student.photo = stored
    session.flush()                                  # the record rules run here (finished / 小学: read-only)
    filestore.put(session, "photos", stored, stored_bytes)
    if old and STORED.match(old) and old != stored:
        filestore.delete(session, "photos", old)
    return student

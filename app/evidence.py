"""Evidence files (证明材料): JPG, PNG or PDF, recognised by their content (magic bytes), not their name;
at most 2 MB each (setting evidence.max_bytes); stored under instance/uploads/evidence with a random name;
served only through the scoped download, always as an attachment."""
import hashlib
import os
import uuid

from flask import current_app
from werkzeug.utils import secure_filename

from app import clock, settings
from app.errors import RuleError
from models.requests import Evidence

MAGIC = ((b"\xff\xd8\xff", "image/jpeg", ".jpg"), (b"\x89PNG\r\n\x1a\n", "image/png", ".png"),
         (b"%PDF-", "application/pdf", ".pdf"))


def sniff(head: bytes) -> tuple[str, str] | None:
    for magic, mime, ext in MAGIC:
        if head.startswith(magic):
            return mime, ext
    return None


def folder() -> str:
    path = os.path.join(current_app.config["UPLOAD_FOLDER"], "evidence")
    os.makedirs(path, exist_ok=True)
    return path


def store(session, stream, filename: str, school_id: int, actor=None, student_id=None, county=None) -> Evidence:
    """Check and keep one uploaded file; returns the (flushed) Evidence row. Nothing is written on refusal."""
    limit = settings.get_int(session, "evidence.max_bytes", county)
    data = stream.read(limit + 1)
    name = filename or "file"
    if not data:
        raise RuleError(f"文件“{name}”是空的", code="empty_file")
    if len(data) > limit:
        raise RuleError(f"文件“{name}”超过{limit // 1024 // 1024 or 1}MB上限", code="file_too_large")
    kind = sniff(data[:16])
    if kind is None:
        raise RuleError(f"文件“{name}”不是JPG、PNG或PDF文件（按文件内容检查）", code="bad_file_type")
    mime, ext = kind
    stored = f"{uuid.uuid4().hex}{ext}"
    with open(os.path.join(folder(), stored), "wb") as f:
        f.write(data)
    row = Evidence(school_id=school_id, student_id=student_id, stored_name=stored,
                   original_name=(secure_filename(name) or "file")[:200] if not _cjk(name) else name[:200],
                   mime=mime, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                   uploaded_by_id=getattr(actor, "id", None), uploaded_at=clock.now())
    session.add(row)
    session.flush()
    return row


def _cjk(name: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in name) and "/" not in name and "\\" not in name and ".." not in name


def path_of(row: Evidence) -> str:
    return os.path.join(folder(), row.stored_name)

"""Evidence files (证明材料): JPG, PNG or PDF, recognised by their content and then decoded, not only sniffed;
at most 2 MB each (setting evidence.max_bytes); kept in the file store's "evidence" area (app.filestore: a folder
under UPLOAD_FOLDER, or the database) under a random name; served only through the scoped download, always as an
attachment.

- Images are decoded with Pillow: `verify()` (structure, PNG checksums), then reopened and fully `load()`ed, after
  a pixel limit checked from the header (MAX_PIXELS: a small file that would decode to gigabytes, a
  decompression bomb, is refused before any pixel is decoded). Data after the image's end (JPEG after its EOI
  marker, PNG after IEND) is refused: that is where HTML or an archive rides along in a polyglot file. A JPEG
  followed by further complete JPEG images (a phone's Multi-Picture Format: depth map, preview) is accepted.
- PDFs are parsed with pypdf; encrypted files and files that carry JavaScript, an opening action or additional
  actions (/JS, /JavaScript, /OpenAction with an action, /AA, /Launch) are refused.
- The name kept and shown is sanitised (`clean_name`): basename only (a browser's `C:\\fakepath\\…` included),
  control, format and bidi characters removed, NUL refused, and the extension is the detected type's.
- The file is written only after the row's flush succeeded, in the same transaction: it is gone again if the
  transaction rolls back.

`check_image` and `read_upload` serve the student photo (app/photos.py) with the same rules.
"""
import hashlib
import io
import re
import struct
import unicodedata
import uuid

from flask import has_request_context, request

from app import clock, settings
from app.errors import RuleError
from models.requests import Evidence

MAGIC = ((b"\xff\xd8\xff", "image/jpeg", ".jpg"), (b"\x89PNG\r\n\x1a\n", "image/png", ".png"),
         (b"%PDF-", "application/pdf", ".pdf"))
PILLOW_FORMAT = {"image/jpeg": "JPEG", "image/png": "PNG"}
MAX_PIXELS = 40_000_000          # 40 megapixels: any phone photo or scan; a decompression bomb is far above
TRAILING_ALLOWED = 16            # padding some writers leave after the end marker
KNOWN_EXTENSIONS = {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".pdf"}
PDF_ACTION_KEYS = {"/JS", "/JavaScript", "/AA", "/Launch"}
PDF_ACTION_TYPES = {"/JavaScript", "/Launch", "/ImportData", "/SubmitForm", "/Rendition"}
PDF_MAX_OBJECTS = 200_000        # a walk over more objects than a 2 MB file can sensibly hold is refused
WINDOWS_RESERVED = set('<>:"/\\|?*')


def sniff(head: bytes) -> tuple[str, str] | None:
    for magic, mime, ext in MAGIC:
        if head.startswith(magic):
            return mime, ext
    return None


# --- names ------------------------------------------------------------------------------------------------

def _readable(filename: str | None) -> str:
    """Basename, NFC, without control, format (bidi, zero-width), line-separator and reserved characters."""
    name = filename or ""
    if "\x00" in name:
        raise RuleError("文件名含有非法字符（NUL），请改名后重新上传", code="bad_file_name")
    name = unicodedata.normalize("NFC", name.replace("\\", "/").rsplit("/", 1)[-1])
    # Cc: control characters; Cf: format characters, the bidi overrides and isolates (U+202A–U+202E,
    # U+2066–U+2069), LRM/RLM (U+200E/F), zero-width characters and the BOM among them; Zl/Zp: line separators
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp", "Cs"))
    return "".join("_" if ch in WINDOWS_RESERVED else ch for ch in name).strip()


_RAW_FILENAME = re.compile(r'filename\s*=\s*"((?:[^"\\]|\\.)*)"', re.I)


def submitted_name(stream, filename: str | None) -> str | None:
    """The file name as the client sent it. Werkzeug reads the multipart header as a quoted string, so the
    backslashes of a Windows path (`C:\\fakepath\\x.jpg`, sent by old browsers and by scripts) vanish and the
    name would turn into `C:fakepathx.jpg`: read the raw header of the upload instead, where a backslash can
    only be a path separator (no Windows name holds one)."""
    if not has_request_context() or not filename:
        return filename
    for storage in request.files.values():
        if storage.stream is stream:
            raw = _RAW_FILENAME.search(storage.headers.get("Content-Disposition", ""))
            if raw and "\\" in raw.group(1):
                return raw.group(1).rsplit("\\", 1)[-1]
            break
    return filename


def clean_name(filename: str | None, ext: str, default: str = "证明材料") -> str:
    """The name to keep and show: basename only, no control/format/bidi characters, the detected extension.

    `C:\\fakepath\\诊断证明.jpg` → `诊断证明.jpg`; `proof.jpg.php` → `proof.jpg`; `proof\u202egpj.exe` →
    `proofgpj.jpg`. A NUL byte is refused (RuleError bad_file_name)."""
    name = _readable(filename)
    if "." in name:                                # the claimed extension goes, whatever it was …
        name = name.rsplit(".", 1)[0]
    if "." in name and "." + name.rsplit(".", 1)[1].lower() in KNOWN_EXTENSIONS:
        name = name.rsplit(".", 1)[0]              # … and a type extension before it too (proof.jpg.php)
    name = name.strip(" .")
    if not name:
        name = default
    return name[:200 - len(ext)] + ext


# --- images -----------------------------------------------------------------------------------------------

def _jpeg_end(data: bytes, start: int = 0) -> int | None:
    """Offset just after the EOI marker of the JPEG starting at `start`, walking its segments (so an EXIF
    thumbnail's EOI inside APP1 is skipped); None when the structure is broken."""
    n, i = len(data), start + 2
    if data[start:start + 2] != b"\xff\xd8":
        return None
    while i < n:
        if data[i] != 0xFF:
            return None
        while i < n and data[i] == 0xFF:           # fill bytes
            i += 1
        if i >= n:
            return None
        marker = data[i]
        i += 1
        if marker == 0xD9:                          # EOI
            return i
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            continue                                # no length
        if i + 2 > n:
            return None
        length = struct.unpack(">H", data[i:i + 2])[0]
        if length < 2:
            return None
        i += length
        if marker == 0xDA:                          # SOS: entropy-coded data up to the next real marker
            while i < n - 1:
                if data[i] == 0xFF and data[i + 1] != 0x00 and not (0xD0 <= data[i + 1] <= 0xD7) \
                        and data[i + 1] != 0xFF:
                    break
                i += 1
            else:
                return None
    return None


def _jpeg_trailing(data: bytes) -> int:
    """Bytes after the image that are neither padding nor further complete JPEG images (MPF)."""
    end = _jpeg_end(data)
    if end is None:
        return -1
    while True:
        rest = data[end:].lstrip(b"\x00\r\n ")
        if not rest:
            return 0
        if rest.startswith(b"\xff\xd8\xff"):
            nxt = _jpeg_end(rest)
            if nxt is not None:
                end = len(data) - len(rest) + nxt
                continue
        return len(rest)


def _png_trailing(data: bytes) -> int:
    """Bytes after the IEND chunk; -1 when the chunk structure is broken."""
    i, n = 8, len(data)
    while i + 8 <= n:
        length = struct.unpack(">I", data[i:i + 4])[0]
        kind = data[i + 4:i + 8]
        i += 12 + length
        if i > n:
            return -1
        if kind == b"IEND":
            return len(data[i:].rstrip(b"\x00"))
    return -1


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def declared_size(data: bytes, fmt: str) -> tuple[int, int] | None:
    """(width, height) as the header declares it, read before anything is decoded (Pillow would refuse a
    large bomb itself, but only with its own limit and message)."""
    if fmt == "PNG":
        if data[12:16] == b"IHDR" and len(data) >= 24:
            return struct.unpack(">II", data[16:24])
        return None
    i, n = 2, len(data)
    while i + 4 <= n and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in (0x01,) or 0xD0 <= marker <= 0xD9:
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in _SOF and i + 9 <= n:
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        if marker == 0xDA:
            return None
        i += 2 + length
    return None


def _too_large(name, width, height, max_pixels) -> RuleError:
    return RuleError(f"文件“{name}”的图片尺寸过大（{width}×{height}像素，上限{max_pixels // 1_000_000}百万像素），"
                     "请缩小后重新上传", code="image_too_large")


def check_image(data: bytes, mime: str, name: str = "", max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """Decode a JPEG or PNG under a pixel limit; refuse what does not decode, bombs and trailing payloads.
    Returns (width, height)."""
    from PIL import Image, UnidentifiedImageError
    fmt = PILLOW_FORMAT[mime]
    label = "JPG" if fmt == "JPEG" else "PNG"
    broken = RuleError(f"文件“{name}”不是完整有效的{label}图片（无法解码）", code="bad_image")
    declared = declared_size(data, fmt)
    if declared and declared[0] * declared[1] > max_pixels:
        raise _too_large(name, declared[0], declared[1], max_pixels)
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise _too_large(name, width, height, max_pixels)
            img.verify()
        with Image.open(io.BytesIO(data), formats=[fmt]) as img:
            img.load()
    except RuleError:
        raise
    except Image.DecompressionBombError as exc:
        raise RuleError(f"文件“{name}”的图片尺寸过大，请缩小后重新上传", code="image_too_large") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise broken from exc
    trailing = _jpeg_trailing(data) if fmt == "JPEG" else _png_trailing(data)
    if trailing < 0:
        raise broken
    if trailing > TRAILING_ALLOWED:
        raise RuleError(f"文件“{name}”在图片结束后还附带了其他数据（{trailing}字节），已拒收；请重新导出或拍摄后上传",
                        code="trailing_data")
    return width, height


# --- PDF --------------------------------------------------------------------------------------------------

def _pdf_actions(reader) -> str | None:
    """The first active-content key reachable from the trailer (JavaScript, an opening action, additional
    actions, launch), or None."""
    from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject
    seen, stack, count = set(), [reader.trailer], 0
    while stack:
        obj = stack.pop()
        if isinstance(obj, IndirectObject):
            key = (obj.idnum, obj.generation)
            if key in seen:
                continue
            seen.add(key)
            obj = obj.get_object()
        count += 1
        if count > PDF_MAX_OBJECTS:
            return "对象过多"
        if isinstance(obj, DictionaryObject):
            for k in obj.keys():
                if k in PDF_ACTION_KEYS:
                    return str(k)
            if obj.get("/S") in PDF_ACTION_TYPES:
                return str(obj.get("/S"))
            opening = obj.get("/OpenAction")
            if opening is not None and isinstance(opening.get_object(), DictionaryObject):
                return "/OpenAction"                 # an action on opening (a plain destination is harmless)
            stack.extend(v for k, v in obj.items() if k not in ("/Parent", "/P"))
        elif isinstance(obj, ArrayObject):
            stack.extend(obj)
    return None


def check_pdf(data: bytes, name: str = "") -> int:
    """Parse a PDF; refuse broken, encrypted and active-content files. Returns the page count."""
    import logging
    from pypdf import PdfReader
    broken = RuleError(f"文件“{name}”不是有效的PDF文件（无法解析）", code="bad_pdf")
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise RuleError(f"文件“{name}”是加密的PDF，请上传未加密的文件", code="encrypted_pdf")
        pages = len(reader.pages)
        found = _pdf_actions(reader)
    except RuleError:
        raise
    except Exception as exc:                 # pypdf raises many kinds for malformed input
        raise broken from exc
    if pages < 1:
        raise broken
    if found:
        raise RuleError(f"文件“{name}”含有脚本或自动执行的动作（{found}），已拒收；请打印为普通PDF后上传",
                        code="active_pdf")
    return pages


def check(data: bytes, name: str) -> tuple[str, str]:
    """Recognise and decode one file; (mime, extension) of what it really is, or RuleError."""
    kind = sniff(data[:16])
    if kind is None:
        raise RuleError(f"文件“{name}”不是JPG、PNG或PDF文件（按文件内容检查）", code="bad_file_type")
    mime, ext = kind
    if mime == "application/pdf":
        check_pdf(data, name)
    else:
        check_image(data, mime, name)
    return mime, ext


def read_upload(stream, filename: str | None, limit: int) -> tuple[bytes, str]:
    """The uploaded bytes (never more than `limit` + 1 read) and the name to show in messages; an empty file
    or one over `limit` bytes is refused. Evidence and the student photo read their uploads alike."""
    data = stream.read(limit + 1)
    shown = _readable(filename) or "file"
    if not data:
        raise RuleError(f"文件“{shown}”是空的", code="empty_file")
    if len(data) > limit:
        raise RuleError(f"文件“{shown}”超过{limit_words(limit)}上限", code="file_too_large")
    return data, shown


def limit_words(limit: int) -> str:
    """2 MB, 512 KB: a byte limit as the messages name it."""
    if limit >= 1024 * 1024:
        return f"{limit / 1024 / 1024:g}MB" if limit % (1024 * 1024) == 0 else f"{limit / 1024 / 1024:.1f}MB"
    return f"{max(limit // 1024, 1)}KB"


def store(session, stream, filename: str, school_id: int, actor=None, student_id=None, county=None) -> Evidence:
    """Check and keep one uploaded file; returns the (flushed) Evidence row. Nothing is written on refusal; the
    file is written after the row's flush and is gone if the transaction then rolls back."""
    from app import filestore
    limit = settings.get_int(session, "evidence.max_bytes", county)
    filename = submitted_name(stream, filename)
    data, shown = read_upload(stream, filename, limit)
    mime, ext = check(data, shown)
    stored = f"{uuid.uuid4().hex}{ext}"
    row = Evidence(school_id=school_id, student_id=student_id, stored_name=stored,
                   original_name=clean_name(filename, ext), mime=mime, size=len(data),
                   sha256=hashlib.sha256(data).hexdigest(), uploaded_by_id=getattr(actor, "id", None),
                   uploaded_at=clock.now())
    session.add(row)
    session.flush()
    filestore.put(session, "evidence", stored, data)
    return row


def send(row: Evidence):
    """The download of an evidence file, always an attachment under its kept name; None when the file is missing."""
    from app import filestore
    return filestore.send("evidence", row.stored_name, mimetype="application/octet-stream", as_attachment=True,
                          download_name=row.original_name)


def path_of(row: Evidence) -> str:
    """Where the local store keeps the file (XUEJI_FILE_STORE=local only)."""
    from app import filestore
    return filestore.local_path("evidence", row.stored_name)

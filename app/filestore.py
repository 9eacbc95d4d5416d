"""Files every app server sees (issue 17): the one store for every file the app keeps.

Areas: "evidence" (证明材料), "photos" (学生照片), "imports" (kept admission lists and 小学毕业生名单, and their saved
check results), "exports" (finished background exports) and "files" (FAB file columns; none today). A file is
named by its area and a random name the caller chose (one path segment).

The store is chosen by config ``XUEJI_FILE_STORE``:

- ``local`` (default, the embedded setup): folders under UPLOAD_FOLDER (``evidence/``, ``photos/`` …), as before.
  Several app servers need that folder shared (NFS), and the backup must copy it beside the database dump.
- ``database``: files live in the application database (models/files.py: ``stored_file`` and its chunks of
  CHUNK_SIZE, so a 20 MB export is never one huge row or packet), so every server and worker that reaches the
  database reads them, and the database's backup covers them.
- ``s3://bucket/prefix``: planned, not built (refused at first use).

Transactions: one rule for both stores, so a use case never asks which store it writes to.

- ``put`` / ``put_file`` write in the caller's transaction: if it rolls back the file is gone (database: its rows
  roll back with the business rows; local: app.uploads.written removes it after the rollback).
- ``delete`` makes a file obsolete in the caller's transaction: it is gone once that commits, and kept if it rolls
  back (database: rows deleted in the transaction; local: app.uploads.replaced removes it after the commit).

Reads go to the primary database (a replica may not yet hold a file that a background job has just written, while
the export_job row naming it is read on the primary). ``get`` returns the bytes (small files: imports, checks);
``open`` / ``send`` stream a download one chunk at a time on short connections of their own, so a slow client
holds neither a pooled connection nor the whole file.

Scratch space (work in progress: XlsxWriter's temporary files, an export's ``.part``) is not stored here: it is
per process by design (app.uploads.scratch_dir).
"""
import io
import os
import shutil

from flask import current_app, send_file
from sqlalchemy import delete as sql_delete, insert, select

from app import clock, uploads
from app.extensions import db
from models.files import StoredFile, StoredFileChunk

CHUNK_SIZE = 1024 * 1024            # one chunk row: far below MariaDB's max_allowed_packet (16 MB by default)
AREAS = {"evidence": "evidence", "photos": "photos", "imports": "imports", "exports": "exports",
         "files": ""}                # FAB's file columns lived in UPLOAD_FOLDER itself
STORES = ("local", "database")
MAX_NAME = 200                       # stored_file.name


def kind(app=None) -> str:
    """The configured store, "local" or "database"; anything else is refused at first use."""
    value = ((app or current_app).config.get("XUEJI_FILE_STORE") or "local").strip()
    if value in STORES:
        return value
    if value.startswith("s3://"):
        raise RuntimeError("XUEJI_FILE_STORE=s3://… 尚未实现（计划中）：请使用 local 或 database")
    raise RuntimeError(f"XUEJI_FILE_STORE 的值 {value!r} 无效：可选 local 或 database")


def _name(area: str, name: str) -> str:
    """A stored name is one plain path segment of a known area (never a way out of its folder)."""
    if area not in AREAS:
        raise ValueError(f"unknown file area {area!r}")
    if not name or len(name) > MAX_NAME or name in (".", "..") or any(c in name for c in "/\\\x00"):
        raise ValueError(f"bad stored file name {name!r}")
    return name


def valid_name(area: str, name: str | None) -> bool:
    try:
        _name(area, name or "")
        return True
    except ValueError:
        return False


# --- writing (in the caller's transaction) -------------------------------------------------------------------

def put(session, area: str, name: str, data: bytes) -> None:
    """Keep `data` as area/name in the session's transaction, replacing a file of that name (only saved checks
    are ever replaced: if the transaction rolls back, the database store keeps the older file, the local store
    has none, and the check is made again)."""
    _name(area, name)
    if kind() == "database":
        _db_delete(session, area, name)
        _db_insert(session, area, name, len(data),
                   (data[i:i + CHUNK_SIZE] for i in range(0, len(data), CHUNK_SIZE)))
    else:
        _local_write(session, local_path(area, name), lambda out: out.write(data))


def put_file(session, area: str, name: str, path: str) -> int:
    """Keep the file at `path` (left in place) as area/name, read CHUNK_SIZE at a time, never whole in memory.
    Returns its size."""
    _name(area, name)
    with open(path, "rb") as src:
        size = os.fstat(src.fileno()).st_size
        if kind() == "database":
            _db_delete(session, area, name)
            _db_insert(session, area, name, size, _read_chunks(src, size))
        else:
            _local_write(session, local_path(area, name), lambda out: shutil.copyfileobj(src, out, CHUNK_SIZE))
    return size


def delete(session, area: str, name: str) -> None:
    """area/name is obsolete once the session's transaction commits (kept if it rolls back)."""
    if not valid_name(area, name):
        return
    if kind() == "database":
        _db_delete(session, area, name)
    else:
        uploads.replaced(session, local_path(area, name))


def _read_chunks(src, size: int):
    left = size
    while left > 0:
        chunk = src.read(min(CHUNK_SIZE, left))
        if not chunk:
            raise OSError(f"{src.name}: shorter than {size} bytes")
        left -= len(chunk)
        yield chunk


def _db_insert(session, area: str, name: str, size: int, chunks) -> None:
    count = -(-size // CHUNK_SIZE)
    file_id = session.execute(insert(StoredFile).values(area=area, name=name, size=size, chunks=count,
                                                        created_at=clock.now())).inserted_primary_key[0]
    for seq, chunk in enumerate(chunks):      # one row at a time: one chunk in memory and in the packet
        session.execute(insert(StoredFileChunk).values(file_id=file_id, seq=seq, data=chunk))


def _db_delete(session, area: str, name: str) -> None:
    file_id = session.scalar(select(StoredFile.id).where(StoredFile.area == area, StoredFile.name == name))
    if file_id is not None:
        session.execute(sql_delete(StoredFileChunk).where(StoredFileChunk.file_id == file_id))
        session.execute(sql_delete(StoredFile).where(StoredFile.id == file_id))


def _local_write(session, path: str, write) -> None:
    """Write beside the target and rename, so a reader never sees half a file; removed if the session rolls back."""
    part = path + ".part"
    try:
        with open(part, "wb") as out:
            write(out)
        os.replace(part, path)
    except BaseException:
        _unlink(part)
        raise
    uploads.written(session, path)


def _unlink(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


# --- reading ---------------------------------------------------------------------------------------------

def local_folder(area: str, app=None) -> str:
    """The local store's folder of an area (created on first use)."""
    folder = os.path.join((app or current_app).config["UPLOAD_FOLDER"], AREAS[area])
    os.makedirs(folder, exist_ok=True)
    return folder


def local_path(area: str, name: str, app=None) -> str:
    """Where the local store keeps area/name."""
    return os.path.join(local_folder(area, app), _name(area, name))


def _primary(stmt):
    """Run a read on the primary, in db.session's transaction (so a caller sees its own uncommitted file)."""
    return db.session.execute(stmt, bind_arguments={"bind": db.engine})


def _row(area: str, name: str):
    return _primary(select(StoredFile.id, StoredFile.size, StoredFile.chunks)
                    .where(StoredFile.area == area, StoredFile.name == name)).first()


def size(area: str, name: str) -> int | None:
    """The file's size in bytes, or None when there is no such file."""
    if not valid_name(area, name):
        return None
    if kind() == "database":
        row = _row(area, name)
        return row.size if row else None
    path = local_path(area, name)
    return os.path.getsize(path) if os.path.isfile(path) else None


def exists(area: str, name: str) -> bool:
    return size(area, name) is not None


def get(area: str, name: str) -> bytes:
    """The whole file (for small files: kept imports, saved checks); FileNotFoundError when missing."""
    _name(area, name)
    if kind() == "database":
        row = _row(area, name)
        if row is None:
            raise FileNotFoundError(f"{area}/{name}")
        return b"".join(_primary(select(StoredFileChunk.data).where(StoredFileChunk.file_id == row.id)
                                 .order_by(StoredFileChunk.seq)).scalars())
    with open(local_path(area, name), "rb") as f:
        return f.read()


def open_file(area: str, name: str):
    """A readable binary file object of area/name (the database store's reads one chunk at a time);
    FileNotFoundError when missing."""
    _name(area, name)
    if kind() != "database":
        return open(local_path(area, name), "rb")
    row = _row(area, name)
    if row is None:
        raise FileNotFoundError(f"{area}/{name}")
    return io.BufferedReader(ChunkReader(db.engine, row.id, row.chunks, row.size), buffer_size=64 * 1024)


def stream(area: str, name: str):
    """The file's bytes, CHUNK_SIZE at a time."""
    with open_file(area, name) as f:
        while chunk := f.read(CHUNK_SIZE):
            yield chunk


def send(area: str, name: str | None, mimetype: str | None = None, **kwargs):
    """A download response (flask.send_file's keywords) streaming area/name, or None when there is no such file.
    The local store hands the path to send_file as before; the database store a ChunkReader (no range requests,
    no ETag: the file is read once, chunk by chunk)."""
    if not name or not valid_name(area, name):
        return None
    mimetype = mimetype or "application/octet-stream"
    if kind() != "database":
        path = local_path(area, name)
        return send_file(path, mimetype=mimetype, **kwargs) if os.path.isfile(path) else None
    try:
        reader = open_file(area, name)
    except FileNotFoundError:
        return None
    total = reader.raw.size
    kwargs.update(conditional=False, etag=False)
    resp = send_file(reader, mimetype=mimetype, **kwargs)
    resp.content_length = total
    return resp


class ChunkReader(io.RawIOBase):
    """A stored file read back chunk by chunk, each chunk on a short connection of its own (a slow download
    holds no pooled connection between chunks, and needs no app context: the WSGI server reads it after the
    request). One chunk is in memory at a time."""

    def __init__(self, engine, file_id: int, chunks: int, size: int):
        super().__init__()
        self.engine, self.file_id, self.chunks, self.size = engine, file_id, chunks, size
        self.seq, self.buffer, self.pos = 0, memoryview(b""), 0

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        if self.pos >= len(self.buffer):
            if self.seq >= self.chunks:
                return 0
            self.buffer, self.pos = memoryview(self._chunk(self.seq)), 0
            self.seq += 1
        n = min(len(target), len(self.buffer) - self.pos)
        target[:n] = self.buffer[self.pos:self.pos + n]
        self.pos += n
        return n

    def _chunk(self, seq: int) -> bytes:
        with self.engine.connect() as conn:
            data = conn.scalar(select(StoredFileChunk.data).where(StoredFileChunk.file_id == self.file_id,
                                                                  StoredFileChunk.seq == seq))
        if data is None:               # deleted while being read (a purge): the download stops short
            raise OSError(f"stored file {self.file_id}: chunk {seq} is gone")
        return bytes(data)

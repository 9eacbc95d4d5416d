"""Files the app writes besides its own rows: kept import files (admission lists, 小学毕业生名单), the transaction
bookkeeping of the local file store, and scratch space for work in progress (XlsxWriter's temporary files, an
export's .part, small downloads).

- Kept files are stored once under a random name in the file store's "imports" area (app.filestore: a folder under
  UPLOAD_FOLDER, or the database), never served from there, and read back for re-checks. A file written in a
  transaction that then rolls back is gone with it, so a refused upload leaves nothing behind.
- `written` / `replaced` are that rule for files on disk (the local store): the rollback removes what the
  transaction wrote, the commit removes what it made obsolete (a replaced photo). The database store needs neither:
  its rows go with the transaction.
- Scratch files live in UPLOAD_FOLDER/tmp/<host>-<pid>, never in the system temp folder (they hold names, 学籍号
  and ID numbers): each process has its own folder, and the folders of this host's dead processes are removed
  when an app starts (a killed worker's leftovers do not outlive its restart). Scratch stays local in every store:
  it is per process by design."""
import os
import shutil
import socket
import uuid

from flask import current_app
from sqlalchemy import event
from sqlalchemy.orm import scoped_session

PENDING = "xueji_new_files"
REPLACED = "xueji_replaced_files"


def keep(session, data: bytes, filename: str) -> str:
    """Store the file under a new random name (keeping a short extension) and return that name; it is gone again
    if the session's transaction rolls back."""
    from app import filestore
    ext = "".join(c for c in os.path.splitext(filename)[1][:6] if c.isalnum() or c == ".")   # a plain name
    stored = f"{uuid.uuid4().hex}{ext}"
    filestore.put(session, "imports", stored, data)
    return stored


def written(session, path: str) -> None:
    """A file that belongs to the session's transaction: deleted if it rolls back."""
    _in_transaction(session)
    session.info.setdefault(PENDING, []).append(path)


def replaced(session, path: str) -> None:
    """A file the session's transaction makes obsolete (a replaced photo): deleted once it commits, kept if it
    rolls back."""
    _in_transaction(session)
    session.info.setdefault(REPLACED, []).append(path)


def _in_transaction(session) -> None:
    """Begin the transaction the file belongs to if no statement has yet: a rollback of a session that never
    began one fires no event, and the file would outlive it."""
    if isinstance(session, scoped_session):
        session = session()
    if not session.in_transaction():
        session.begin()


def read(stored_name: str) -> bytes:
    from app import filestore
    return filestore.get("imports", stored_name)


def _remove(paths) -> None:
    for path in paths:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def _forget(session) -> None:
    session.info.pop(PENDING, None)
    _remove(session.info.pop(REPLACED, ()))


def _discard(session) -> None:
    _remove(session.info.pop(PENDING, ()))
    session.info.pop(REPLACED, None)


def install(session_factory) -> None:
    event.listen(session_factory, "after_commit", _forget)
    event.listen(session_factory, "after_rollback", _discard)


# --- scratch space -------------------------------------------------------------------------------------------

def scratch_root(app=None) -> str:
    return os.path.join((app or current_app).config["UPLOAD_FOLDER"], "tmp")


def scratch_dir(app=None) -> str:
    """This process's scratch folder (created on first use)."""
    path = os.path.join(scratch_root(app), f"{socket.gethostname()}-{os.getpid()}")
    os.makedirs(path, exist_ok=True)
    return path


def clean_scratch(app) -> None:
    """Remove the scratch folders of this host's processes that no longer run (and their files)."""
    root = scratch_root(app)
    if not os.path.isdir(root):
        return
    host = socket.gethostname()
    for name in os.listdir(root):
        owner, _, pid = name.rpartition("-")
        if owner != host or not pid.isdigit() or int(pid) == os.getpid() or alive(int(pid)):
            continue
        shutil.rmtree(os.path.join(root, name), ignore_errors=True)


def alive(pid: int) -> bool:
    """Whether a process of this host runs with that id."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

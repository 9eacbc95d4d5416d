"""Uploaded import files, kept as received (admission lists, 小学毕业生名单): stored once under a random name in
UPLOAD_FOLDER/imports, never served from there, read back for re-checks. One place so every importer keeps its
files the same way (issue 17 moves this store where every app server can read it)."""
import os
import uuid

from flask import current_app


def folder() -> str:
    path = os.path.join(current_app.config["UPLOAD_FOLDER"], "imports")
    os.makedirs(path, exist_ok=True)
    return path


def path_of(stored_name: str, suffix: str = "") -> str:
    return os.path.join(folder(), f"{stored_name}{suffix}")


def keep(data: bytes, filename: str) -> str:
    """Write the file under a new random name (keeping a short extension) and return that name."""
    stored = f"{uuid.uuid4().hex}{os.path.splitext(filename)[1][:6]}"
    with open(path_of(stored), "wb") as f:
        f.write(data)
    return stored


def read(stored_name: str) -> bytes:
    with open(path_of(stored_name), "rb") as f:
        return f.read()

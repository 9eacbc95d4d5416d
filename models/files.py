"""Stored files (XUEJI_FILE_STORE=database): a file every app server reads, kept in the application database.

A file is one `stored_file` row and its bytes in `stored_file_chunk` rows of about 1 MB (app/filestore.py CHUNK_SIZE),
so a 20 MB export is never one huge row or packet (MariaDB's max_allowed_packet) and a download reads one chunk at a
time. The rows are written in the caller's transaction: a rollback takes the file with it.
"""
from datetime import datetime

from flask_appbuilder.models.sqla import Model
from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.dialects import mysql

# BLOB on MariaDB holds 64 KB only; PostgreSQL's bytea and SQLite's BLOB have no such limit
CHUNK_TYPE = LargeBinary().with_variant(mysql.LONGBLOB(), "mysql")


class StoredFile(Model):
    __tablename__ = "stored_file"
    # no __scope__: never listed or edited on a screen; reached only through app/filestore.py, by the name on a
    # row the user may see (evidence, student.photo, import batch, export job), written with Core statements
    __table_args__ = (UniqueConstraint("area", "name", name="uq_stored_file_area_name"),)
    id = Column(Integer, primary_key=True)
    area = Column(String(20), nullable=False)       # evidence, photos, imports, exports
    name = Column(String(200), nullable=False)      # the stored (random) name within the area
    size = Column(BigInteger, nullable=False)
    chunks = Column(Integer, nullable=False)
    created_at = Column(DateTime, nullable=False, default=datetime.now)

    def __repr__(self) -> str:
        return f"{self.area}/{self.name}"


class StoredFileChunk(Model):
    __tablename__ = "stored_file_chunk"
    file_id = Column(Integer, ForeignKey("stored_file.id"), primary_key=True)
    seq = Column(Integer, primary_key=True, autoincrement=False)
    data = Column(CHUNK_TYPE, nullable=False)

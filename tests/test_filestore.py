"""Files every app server sees (issue 17): app/filestore.py keeps evidence, photos, kept imports and exports in
the local folder or in the database (XUEJI_FILE_STORE), with the same transaction rule for both: a file written
in a transaction that rolls back is gone, a file a commit makes obsolete goes after the commit only."""
import glob
import hashlib
import io
import os
import re

import pytest
from openpyxl import load_workbook
from sqlalchemy import delete, func, select, text

from app import clock, exportjobs, filestore, photos
from app.extensions import db
from models import ExportJob, Student
from models.files import StoredFile, StoredFileChunk
from models.requests import Evidence
from tests.conftest import api_headers, export_xlsx, login
from tests.test_photos import picture, post
from tests.test_workflow import PNG, file_change, upload

STORES = ["local", "database"]


def _clear_store(app) -> None:
    with app.app_context():
        db.session.execute(delete(StoredFileChunk))
        db.session.execute(delete(StoredFile))
        db.session.commit()


@pytest.fixture(params=STORES)
def store(request, app, world):
    """The session's app with XUEJI_FILE_STORE set to each store in turn (read at every call, so no new app)."""
    before = app.config.get("XUEJI_FILE_STORE")
    app.config["XUEJI_FILE_STORE"] = request.param
    _clear_store(app)
    yield request.param
    app.config["XUEJI_FILE_STORE"] = before
    _clear_store(app)


@pytest.fixture
def database_store(app, world):
    before = app.config.get("XUEJI_FILE_STORE")
    app.config["XUEJI_FILE_STORE"] = "database"
    _clear_store(app)
    yield
    app.config["XUEJI_FILE_STORE"] = before
    _clear_store(app)


def committed(app, area, name) -> bool:
    """Whether the file is there for everyone else: on disk (local), or in a committed row (another connection)."""
    if app.config["XUEJI_FILE_STORE"] == "local":
        return os.path.isfile(filestore.local_path(area, name, app))
    with db.engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(StoredFile).where(
            StoredFile.area == area, StoredFile.name == name)) == 1


def stored_rows(app, area=None) -> list:
    with app.app_context():
        q = select(StoredFile.area, StoredFile.name, StoredFile.size)
        if area:
            q = q.where(StoredFile.area == area)
        return db.session.execute(q).all()


# --- the store itself ------------------------------------------------------------------------------------------

def test_a_file_comes_back_as_it_was_written(app, store):
    data = os.urandom(3000)
    with app.app_context():
        filestore.put(db.session, "evidence", "a.png", data)
        db.session.commit()
        assert filestore.get("evidence", "a.png") == data
        assert filestore.exists("evidence", "a.png") and filestore.size("evidence", "a.png") == 3000
        assert b"".join(filestore.stream("evidence", "a.png")) == data
        filestore.put(db.session, "evidence", "a.png", b"second")           # a put replaces
        db.session.commit()
        assert filestore.get("evidence", "a.png") == b"second"
        filestore.delete(db.session, "evidence", "a.png")
        db.session.commit()
        assert not filestore.exists("evidence", "a.png") and filestore.size("evidence", "a.png") is None
        with pytest.raises(FileNotFoundError):
            filestore.get("evidence", "a.png")
        db.session.remove()
    if store == "database":                 # nothing on this server's disk: the database holds it
        assert not os.path.exists(os.path.join(app.config["UPLOAD_FOLDER"], "evidence", "a.png"))


def test_a_large_file_is_kept_and_read_chunk_by_chunk(app, store, monkeypatch, tmp_path):
    """put_file reads CHUNK_SIZE at a time into chunk rows; a download fetches one chunk, then the next."""
    monkeypatch.setattr(filestore, "CHUNK_SIZE", 1000)
    data = os.urandom(4500)
    source = tmp_path / "big.part"
    source.write_bytes(data)
    with app.test_request_context():
        assert filestore.put_file(db.session, "exports", "big.xlsx", str(source)) == 4500
        db.session.commit()
        assert source.exists()                                             # left in place for its owner
        if store == "database":
            sizes = db.session.execute(select(func.length(StoredFileChunk.data)).order_by(StoredFileChunk.seq)
                                       ).scalars().all()
            assert sizes == [1000, 1000, 1000, 1000, 500]
            fetched = []
            real = filestore.ChunkReader._chunk
            monkeypatch.setattr(filestore.ChunkReader, "_chunk",
                                lambda self, seq: fetched.append(seq) or real(self, seq))
            with filestore.open_file("exports", "big.xlsx") as f:
                assert f.read(10) == data[:10] and fetched == [0]           # one chunk in memory, not the file
                assert f.read() == data[10:] and fetched == [0, 1, 2, 3, 4]
        pieces = list(filestore.stream("exports", "big.xlsx"))
        assert b"".join(pieces) == data and max(map(len, pieces)) <= 1000
        resp = filestore.send("exports", "big.xlsx", mimetype="application/octet-stream", as_attachment=True,
                              download_name="导出.xlsx")
        assert resp.content_length == 4500 and b"".join(resp.response) == data
        resp.close()
        db.session.remove()


def test_chunks_of_a_megabyte_fit_every_database(app, store):
    """The default chunk size on the real column types (MariaDB's BLOB would hold 64 KB only: LONGBLOB)."""
    data = os.urandom(filestore.CHUNK_SIZE * 2 + 12345)
    with app.app_context():
        filestore.put(db.session, "exports", "big.xlsx", data)
        db.session.commit()
        db.session.remove()
        assert hashlib.sha256(filestore.get("exports", "big.xlsx")).digest() == hashlib.sha256(data).digest()
        db.session.remove()


def test_a_file_written_in_a_failed_transaction_is_gone(app, store):
    kept = set(glob.glob(os.path.join(app.config["UPLOAD_FOLDER"], "imports", "*")))    # other tests' files
    with app.app_context():
        filestore.put(db.session, "imports", "refused.xlsx", b"rows")
        assert filestore.exists("imports", "refused.xlsx")                 # the writer sees its own file …
        db.session.rollback()
        assert not filestore.exists("imports", "refused.xlsx")             # … and the rollback takes it away
        assert not committed(app, "imports", "refused.xlsx")
        assert stored_rows(app) == [] and set(glob.glob(os.path.join(app.config["UPLOAD_FOLDER"], "imports", "*"))) \
            == kept
        db.session.remove()


def test_a_deleted_file_goes_with_the_commit_only(app, store):
    with app.app_context():
        filestore.put(db.session, "photos", "old.jpg", b"old")
        db.session.commit()
        filestore.delete(db.session, "photos", "old.jpg")
        assert committed(app, "photos", "old.jpg")                         # still there for everyone else
        db.session.rollback()
        assert filestore.get("photos", "old.jpg") == b"old"                # a rollback keeps it
        filestore.delete(db.session, "photos", "old.jpg")
        db.session.commit()
        assert not committed(app, "photos", "old.jpg")
        db.session.remove()


def test_a_replaced_photo_is_removed_after_the_commit_only(app, store, world):
    sid = world.student_of("a1")
    raw = photos.set_photo.__wrapped_service__              # the use case without its commit
    with app.test_request_context():
        student = db.session.get(Student, sid)
        photos.set_photo(db.session, None, student, io.BytesIO(picture(400, 500)), "a.png")
        first = student.photo
        raw(db.session, None, student, io.BytesIO(picture(500, 600)), "b.png")
        second = student.photo
        assert committed(app, "photos", first)                             # replaced, not yet committed
        db.session.rollback()
        assert committed(app, "photos", first) and not committed(app, "photos", second)
        student = db.session.get(Student, sid)
        assert student.photo == first and filestore.exists("photos", first)
        photos.set_photo(db.session, None, student, io.BytesIO(picture(500, 600)), "b.png")
        third = student.photo
        assert not committed(app, "photos", first) and committed(app, "photos", third)
        db.session.remove()


def test_names_stay_inside_their_area(app, store):
    with app.app_context():
        for bad in ("../config.py", "a/b", "..", "", "x\x00.png", "n" * 201):
            with pytest.raises(ValueError):
                filestore.put(db.session, "evidence", bad, b"x")
            assert filestore.send("evidence", bad) is None and not filestore.exists("evidence", bad)
        with pytest.raises(ValueError):
            filestore.put(db.session, "elsewhere", "a.png", b"x")
        db.session.rollback()
        db.session.remove()


@pytest.mark.parametrize("value", ["s3://bucket/xueji", "nfs", "Database"])
def test_a_store_that_is_not_built_is_refused(app, value):
    with app.app_context():
        app.config["XUEJI_FILE_STORE"] = value
        try:
            with pytest.raises(RuntimeError) as exc:
                filestore.exists("evidence", "a.png")
        finally:
            app.config["XUEJI_FILE_STORE"] = "local"
    assert "XUEJI_FILE_STORE" in str(exc.value)


def test_an_app_with_an_unknown_store_does_not_start(make_app):
    with pytest.raises(RuntimeError, match="XUEJI_FILE_STORE"):
        make_app(XUEJI_FILE_STORE="s3://bucket/xueji")


# --- every server sees every file ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", [
    pytest.param("local", marks=pytest.mark.xfail(strict=True, raises=FileNotFoundError,
                                                 reason="the local store is one server's disk")),
    "database"])
def test_a_file_written_by_one_server_is_read_by_another(app, world, make_app, tmp_path, kind):
    """Two app servers on the same database, each with an upload folder of its own (no shared disk)."""
    app.config["XUEJI_FILE_STORE"] = kind
    _clear_store(app)
    try:
        other = make_app(XUEJI_FILE_STORE=kind, UPLOAD_FOLDER=str(tmp_path / "other-server"))
        data = os.urandom(5000)
        with app.app_context():
            filestore.put(db.session, "evidence", "shared.png", data)
            db.session.commit()
            db.session.remove()
        with other.app_context():
            try:
                assert filestore.get("evidence", "shared.png") == data
            finally:
                db.session.remove()
    finally:
        app.config["XUEJI_FILE_STORE"] = "local"
        _clear_store(app)


def test_a_photo_uploaded_on_one_server_is_served_by_another(app, world, make_app, tmp_path, database_store):
    sid = world.student_of("a1")
    other = make_app(XUEJI_FILE_STORE="database", UPLOAD_FOLDER=str(tmp_path / "other-server"))
    c = other.test_client()
    assert login(c, "school_a1_clerk").status_code == 302
    post(c, sid, picture(400, 500))
    with app.app_context():
        name = db.session.get(Student, sid).photo
        db.session.remove()
    here = app.test_client()
    login(here, "school_a1_clerk")
    resp = here.get(f"/student/photo/{sid}")
    assert resp.status_code == 200 and resp.mimetype == "image/jpeg" and resp.data[:3] == b"\xff\xd8\xff"
    assert resp.headers["Cache-Control"] == "private, no-cache" and "sandbox" in resp.headers["Content-Security-Policy"]
    assert [r.name for r in stored_rows(app, "photos")] == [name]
    assert not glob.glob(os.path.join(app.config["UPLOAD_FOLDER"], "photos", name))


# --- the use cases with the database store ---------------------------------------------------------------------

def test_evidence_is_uploaded_and_downloaded_from_the_database(app, world, client, as_user, database_store):
    h = api_headers(client, "school_a1_clerk")
    sid = world.student_of("a1")
    resp = file_change(client, h, sid, {"name": "李改名"})
    assert resp.status_code in (200, 201), resp.get_json()
    with app.app_context():
        row = db.session.scalars(select(Evidence).where(Evidence.student_id == sid)).one()
        eid, stored, digest = row.id, row.stored_name, row.sha256
        db.session.remove()
    assert [r.name for r in stored_rows(app, "evidence")] == [stored]
    assert not os.path.exists(os.path.join(app.config["UPLOAD_FOLDER"], "evidence", stored))
    page = as_user("school_a1_clerk").get(f"/request/evidence/{eid}")
    assert page.status_code == 200 and page.headers["Content-Disposition"].startswith("attachment")
    assert page.data == PNG and hashlib.sha256(page.data).hexdigest() == digest
    assert page.headers["Content-Security-Policy"].startswith("sandbox")
    assert as_user("school_b1_clerk").get(f"/request/evidence/{eid}").status_code == 404     # scope as before


def test_refused_evidence_leaves_no_row_in_the_database(app, world, client, database_store):
    h = api_headers(client, "school_a1_clerk")
    assert upload(client, h, world.student_of("a1"), b"\xff\xd8\xff<html>", "x.jpg").status_code == 422
    assert stored_rows(app) == []


def test_an_export_is_written_to_and_downloaded_from_the_database(app, world, as_user, database_store):
    c = as_user("county_a_clerk")
    job_id, ws = export_xlsx(c, "/student/export/xlsx")
    assert ws.max_row > 1
    with app.app_context():
        job = db.session.get(ExportJob, job_id)
        name = job.file_name
        db.session.remove()
    assert [r.name for r in stored_rows(app, "exports")] == [name]
    uploads_folder = app.config["UPLOAD_FOLDER"]
    assert not os.path.exists(os.path.join(uploads_folder, "exports", name))
    assert not glob.glob(os.path.join(uploads_folder, "**", f"{name}.part"), recursive=True)      # scratch cleared
    api = c.get(f"/api/v1/exportjob/{job_id}/file", headers=api_headers(app.test_client(), "county_a_clerk"))
    assert api.status_code == 200 and load_workbook(io.BytesIO(api.data)).worksheets[0].max_row == ws.max_row
    assert as_user("county_b_clerk").get(f"/exportjob/file/{job_id}").status_code == 404


def test_old_and_surplus_exports_leave_the_database(app, world, as_user, database_store, monkeypatch):
    from datetime import timedelta
    c = as_user("school_a1_clerk")
    old_id, _ = export_xlsx(c, "/student/export/xlsx")
    with app.app_context():
        old = db.session.get(ExportJob, old_id)
        old_name = old.file_name
        old.created_at = clock.now() - exportjobs.KEEP_FOR - timedelta(hours=1)
        db.session.commit()
        db.session.remove()
    second_id, _ = export_xlsx(c, "/student/export/xlsx")
    assert old_name not in [r.name for r in stored_rows(app, "exports")]            # purged after 7 days
    monkeypatch.setattr(exportjobs, "MAX_KEPT_PER_USER", 1)
    third_id, _ = export_xlsx(c, "/student/export/xlsx")
    with app.app_context():
        names = {j.id: j.file_name for j in db.session.scalars(select(ExportJob))}
        db.session.remove()
    assert second_id not in names and [r.name for r in stored_rows(app, "exports")] == [names[third_id]]


def test_an_export_shown_done_always_has_its_file(app, world, as_user, store, monkeypatch):
    """The file and the job's "done" are one transaction: no other server sees the job done before its file is
    there, and a failure putting the file fails the job and leaves no file."""
    real = filestore.put_file
    seen = []

    def put_then_fail(session, area, name, path):
        job_id = int(name.split("_", 1)[0])
        seen.append(exportjobs._row(job_id)["state"])             # what another server reads meanwhile
        real(session, area, name, path)
        seen.append(exportjobs._row(job_id)["state"])
        raise OSError("disk full")
    monkeypatch.setattr(filestore, "put_file", put_then_fail)
    c = as_user("school_a1_clerk")
    resp = c.post("/student/export/xlsx")
    job_id = int(re.search(r"/exportjob/show/(\d+)", resp.headers["Location"]).group(1))
    exportjobs.wait(job_id)
    status = c.get(f"/exportjob/status/{job_id}").get_json()
    assert seen == ["running", "running"] and status["state"] == "failed" and "download" not in status
    with app.app_context():
        name = db.session.get(ExportJob, job_id).file_name
        assert not committed(app, "exports", name)
        db.session.remove()
    assert stored_rows(app) == [] and c.get(f"/exportjob/file/{job_id}").status_code == 404
    assert not glob.glob(os.path.join(app.config["UPLOAD_FOLDER"], "**", f"{name}*"), recursive=True)


def test_an_admission_list_and_its_saved_check_live_in_the_database(app, world, as_user, database_store,
                                                                    monkeypatch):
    from app import admissions, clock as clock_module
    from datetime import datetime
    from tests.test_admissions import graduates, upload as upload_list, workbook
    clock_module.fix(datetime(2026, 11, 20, 10, 0))
    c = as_user("school_a2_clerk")
    rows = [[n, x] for n, x, _ in graduates(app, 2)] + [["错名字", "G4101022011999999X9"[:19]]]
    bid = upload_list(c, world.schools["a2"], workbook(c, rows))
    with app.app_context():
        from models.admissions import ImportBatch
        stored = db.session.get(ImportBatch, bid).stored_name
        db.session.remove()
    assert sorted(r.name for r in stored_rows(app, "imports")) == [stored, f"{stored}.check.json"]
    assert not glob.glob(os.path.join(app.config["UPLOAD_FOLDER"], "imports", f"{stored}*"))

    def no_second_check(*a, **k):
        raise AssertionError("the preview must read the saved check")
    monkeypatch.setattr(admissions, "check_admissions", no_second_check)
    page = c.get(f"/admissionimport/batch/{bid}").get_data(as_text=True)
    assert "第4行“学籍号”" in page or "第4行“姓名”" in page
    monkeypatch.undo()
    clock_module.fix(datetime(2026, 11, 20, 10, 0))
    assert "有效" in c.get(f"/admissionimport/batch/{bid}?recheck=1").get_data(as_text=True)   # reads the kept file
    assert c.post(f"/admissionimport/batch/{bid}/commit", data={"mode": "valid_rows"}).status_code == 302
    clock_module.fix(None)


def test_a_check_saved_twice_at_once_is_kept_once(app, world, database_store, monkeypatch):
    """The saved check is a cache: the second of two simultaneous saves (unique name) is dropped, not an error,
    unless it was written in a use case's transaction (that transaction is then spoilt and must fail)."""
    from sqlalchemy.exc import IntegrityError
    from app import admissions

    def clash(*a, **k):
        raise IntegrityError("INSERT", {}, Exception("uq_stored_file_area_name"))
    monkeypatch.setattr(admissions, "_store_check", clash)

    from app.service import service
    from models.admissions import ImportBatch
    batch, checked = ImportBatch(stored_name="x.xlsx"), admissions.Checked(rows=[], issues=[])

    @service
    def task(session):                       # inside a use case the clash is the use case's (its transaction)
        admissions.save_check(batch, checked)
    with app.app_context():
        admissions.save_check(batch, checked)
        with pytest.raises(IntegrityError):
            task(db.session)
        db.session.remove()


def test_the_migration_made_the_tables_the_models_use(app):
    with app.app_context():
        names = set(db.inspect(db.engine).get_table_names())
        assert {"stored_file", "stored_file_chunk"} <= names
        if db.engine.dialect.name == "mysql":
            kind = db.session.execute(text(
                "SELECT data_type FROM information_schema.columns WHERE table_schema = DATABASE() "
                "AND table_name = 'stored_file_chunk' AND column_name = 'data'")).scalar()
            assert kind.lower() == "longblob"
        db.session.remove()

"""学生照片 (issue 16): uploaded on the student page or through the API, decoded and checked like evidence, kept
cropped to 26×32 mm (13:16, 390×480 JPEG without EXIF), served only within scope and printed on the 学籍卡
with the seal area."""
import io
import os

import pytest
from sqlalchemy import update

from app import photos, settings
from app.errors import RuleError
from app.extensions import db
from models import Setting, Student
from tests.conftest import api_headers
from tests.test_evidence import png_bomb


def picture(width, height, fmt="PNG", exif=False) -> bytes:
    """A picture whose middle 13:16 part is green and the rest red (so the crop can be seen)."""
    from PIL import Image
    img = Image.new("RGB", (width, height), (220, 0, 0))
    if width * 16 > height * 13:
        w = height * 13 // 16
        img.paste((0, 200, 0), ((width - w) // 2 + 2, 0, (width + w) // 2 - 2, height))
    else:
        h = width * 16 // 13
        img.paste((0, 200, 0), (0, (height - h) // 2 + 2, width, (height + h) // 2 - 2))
    out = io.BytesIO()
    kwargs = {}
    if exif:
        data = Image.Exif()
        data[0x010F] = "PhoneMaker"                      # Make
        data[0x8825] = {2: (34, 45, 0)}                  # GPS IFD: a latitude
        kwargs["exif"] = data.tobytes()
    img.save(out, fmt, **kwargs)
    return out.getvalue()


def folder(app):
    return os.path.join(app.config["UPLOAD_FOLDER"], "photos")


def files(app):
    return set(os.listdir(folder(app))) if os.path.isdir(folder(app)) else set()


def photo_of(app, sid):
    with app.app_context():
        return db.session.get(Student, sid).photo


def post(c, sid, data, name="photo.png"):
    return c.post(f"/student/photo/{sid}", data={"photo": (io.BytesIO(data), name)},
                  content_type="multipart/form-data", follow_redirects=True)


def stored_image(app, sid):
    from PIL import Image
    with open(os.path.join(folder(app), photo_of(app, sid)), "rb") as f:
        data = f.read()
    return data, Image.open(io.BytesIO(data))


@pytest.mark.parametrize("width,height,fmt", [(800, 400, "PNG"), (600, 1500, "JPEG"), (13 * 30, 16 * 30, "PNG")])
def test_upload_is_cropped_to_the_national_ratio(app, world, as_user, width, height, fmt):
    sid = world.student_of("a1")
    c = as_user("school_a1_clerk")
    page = post(c, sid, picture(width, height, fmt, exif=(fmt == "JPEG")), f"照片.{fmt.lower()}").get_data(as_text=True)
    assert "照片已保存" in page
    data, img = stored_image(app, sid)
    assert img.format == "JPEG" and img.size == (390, 480)
    assert not img.getexif() and b"Exif" not in data[:200] and b"PhoneMaker" not in data
    rgb = img.convert("RGB")
    for xy in ((3, 3), (386, 3), (3, 476), (386, 476), (195, 240)):   # the red outside was cut off
        r, g, b = rgb.getpixel(xy)
        assert g > 150 and r < 80, (xy, rgb.getpixel(xy))
    assert photo_of(app, sid).endswith(".jpg") and len(photo_of(app, sid)) == 36


def test_photo_is_shown_on_the_page_and_the_card_and_served_in_scope(app, world, as_user):
    sid = world.student_of("a1")
    c = as_user("school_a1_clerk")
    page = c.get(f"/student/show/{sid}").get_data(as_text=True)
    assert "无照片" in page and f'action="/student/photo/{sid}"' in page and 'name="csrf_token"' in page
    card = c.get(f"/student/card/{sid}").get_data(as_text=True)
    assert "无照片" in card and "学校（盖章）" in card
    assert c.get(f"/student/photo/{sid}").status_code == 404            # none yet
    post(c, sid, picture(400, 500))
    page = c.get(f"/student/show/{sid}").get_data(as_text=True)
    assert f'src="/student/photo/{sid}?v=' in page and "无照片" not in page and "更换照片" in page
    card = c.get(f"/student/card/{sid}").get_data(as_text=True)
    with app.app_context():
        school = db.session.get(Student, sid).school.name
    assert f'src="/student/photo/{sid}?v=' in card and "26mm" in card and "32mm" in card
    assert "学校（盖章）" in card and card.count(school) >= 2 and "年　　月　　日" in card
    resp = c.get(f"/student/photo/{sid}")
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "image/jpeg"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.data[:3] == b"\xff\xd8\xff"
    # the county of the school reads it; another school and another county do not
    assert as_user("county_a_clerk").get(f"/student/photo/{sid}").status_code == 200
    for other in ("school_b1_clerk", "school_a2_clerk", "county_b_clerk"):
        oc = as_user(other)
        assert oc.get(f"/student/photo/{sid}").status_code == 404, other
        assert oc.post(f"/student/photo/{sid}", data={"photo": (io.BytesIO(picture(130, 160)), "x.png")},
                       content_type="multipart/form-data").status_code in (403, 404), other
    assert as_user("school_b1_clerk").post(
        f"/student/photo/{sid}", data={"photo": (io.BytesIO(picture(130, 160)), "x.png")},
        content_type="multipart/form-data").status_code == 404
    # never from static
    assert not os.path.commonpath([folder(app), app.static_folder]) == app.static_folder


def test_leader_may_view_but_not_upload(app, world, as_user):
    sid = world.student_of("a1")
    post(as_user("school_a1_clerk"), sid, picture(400, 500))
    before = photo_of(app, sid)
    c = as_user("school_a1_leader")
    page = c.get(f"/student/show/{sid}").get_data(as_text=True)
    assert f'src="/student/photo/{sid}?v=' in page
    assert f'action="/student/photo/{sid}"' not in page and "更换照片" not in page and "上传照片" not in page
    assert c.get(f"/student/photo/{sid}").status_code == 200
    resp = c.post(f"/student/photo/{sid}", data={"photo": (io.BytesIO(picture(130, 160)), "x.png")},
                  content_type="multipart/form-data")
    assert resp.status_code == 403
    assert photo_of(app, sid) == before
    h = api_headers(app.test_client(), "school_a1_leader")
    resp = app.test_client().post(f"/api/v1/student/{sid}/photo", headers=h,
                                  data={"photo": (io.BytesIO(picture(130, 160)), "x.png")},
                                  content_type="multipart/form-data")
    assert resp.status_code == 403


def limit(app, value):
    with app.app_context():
        db.session.add(Setting(key="photo.max_bytes", region_code=None, value=str(value)))
        db.session.commit()


@pytest.mark.parametrize("case", ["text", "pdf", "bomb", "broken", "too_big", "empty"])
def test_refused_uploads_leave_nothing(app, world, as_user, case):
    sid = world.student_of("a1")
    c = as_user("school_a1_clerk")
    expected = {"text": "不是JPG或PNG图片", "pdf": "不是JPG或PNG图片", "bomb": "图片尺寸过大",
                "broken": "不是完整有效的PNG图片", "too_big": "超过", "empty": "是空的"}[case]
    data = {"text": b"<html><script>alert(1)</script></html>", "pdf": b"%PDF-1.4\n%%EOF\n", "bomb": png_bomb(),
            "broken": picture(400, 500)[:300], "too_big": picture(1300, 1600), "empty": b""}[case]
    if case == "too_big":
        limit(app, 4096)
        assert len(data) > 4096
        expected = "超过4KB上限"
    before = files(app)
    page = post(c, sid, data, "学生.png").get_data(as_text=True)
    assert expected in page, page[-3000:]
    assert photo_of(app, sid) is None and files(app) == before
    # REST: the same message
    h = api_headers(app.test_client(), "school_a1_clerk")
    resp = app.test_client().post(f"/api/v1/student/{sid}/photo", headers=h,
                                  data={"photo": (io.BytesIO(data), "学生.png")}, content_type="multipart/form-data")
    assert resp.status_code == 422 and expected in resp.get_json()["message"], resp.get_json()
    assert resp.get_json()["message"] in page
    assert photo_of(app, sid) is None and files(app) == before


def graduate(app, sid):
    with app.app_context():
        db.session.execute(update(Student).where(Student.id == sid).values(status="毕业", class_id=None))
        db.session.commit()


def test_graduate_takes_no_photo(app, world, as_user):
    sid = world.student_of("a1")
    graduate(app, sid)
    c = as_user("school_a1_clerk")
    page = c.get(f"/student/show/{sid}").get_data(as_text=True)
    assert f'action="/student/photo/{sid}"' not in page and "无照片" in page
    before = files(app)
    page = post(c, sid, picture(400, 500)).get_data(as_text=True)
    assert "已毕业（结业、肄业）学生的基本信息只读" in page
    h = api_headers(app.test_client(), "school_a1_clerk")
    resp = app.test_client().post(f"/api/v1/student/{sid}/photo", headers=h,
                                  data={"photo": (io.BytesIO(picture(400, 500)), "x.png")},
                                  content_type="multipart/form-data")
    assert resp.status_code == 422 and resp.get_json()["code"] == "read_only"
    assert photo_of(app, sid) is None and files(app) == before


def test_the_record_rules_refuse_at_flush_and_the_file_goes_with_the_rollback(app, world, monkeypatch):
    """Even past the early check, the student record rules refuse a finished record at flush, and the
    transaction's rollback leaves no file."""
    sid = world.student_of("a1")
    graduate(app, sid)
    monkeypatch.setattr(photos, "refusal", lambda student: None)
    before = files(app)
    with app.test_request_context():
        student = db.session.get(Student, sid)
        with pytest.raises(RuleError) as exc:
            photos.set_photo(db.session, None, student, io.BytesIO(picture(400, 500)), "x.png")
        db.session.rollback()
        assert exc.value.code == "read_only"
        db.session.remove()
    assert photo_of(app, sid) is None and files(app) == before


def test_replacing_removes_the_old_file(app, world, as_user):
    sid = world.student_of("a1")
    c = as_user("school_a1_clerk")
    post(c, sid, picture(400, 500))
    first = photo_of(app, sid)
    assert first in files(app)
    post(c, sid, picture(500, 400, "JPEG"))
    second = photo_of(app, sid)
    assert second != first and second in files(app) and first not in files(app)
    # a refused replacement keeps the photo there is
    post(c, sid, b"not a picture")
    assert photo_of(app, sid) == second and second in files(app)


def test_rest_upload(app, world):
    sid = world.student_of("a1")
    client = app.test_client()
    h = api_headers(client, "school_a1_clerk")
    resp = client.post(f"/api/v1/student/{sid}/photo", headers=h,
                       data={"file": (io.BytesIO(picture(800, 400, "JPEG")), "x.jpg")},
                       content_type="multipart/form-data")
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["result"] == {"id": sid, "photo": f"/student/photo/{sid}", "width": 390, "height": 480}
    _, img = stored_image(app, sid)
    assert img.size == (390, 480)
    resp = client.post(f"/api/v1/student/{sid}/photo", headers=h, data={}, content_type="multipart/form-data")
    assert resp.status_code == 422 and resp.get_json()["code"] == "file_required"
    other = world.student_of("b1")
    resp = client.post(f"/api/v1/student/{other}/photo", headers=h,
                       data={"file": (io.BytesIO(picture(400, 500)), "x.png")}, content_type="multipart/form-data")
    assert resp.status_code == 404
    assert photo_of(app, other) is None


@pytest.mark.parametrize("value,ok", [("2097152", True), ("524288", True), ("0", False), ("-1", False),
                                      ("abc", False), ("1.5", False), (str(13 * 1024 * 1024), False)])
def test_photo_setting_is_validated(app, world, value, ok):
    assert "photo.max_bytes" in settings.DEFAULTS and settings.MEANINGS["photo.max_bytes"]
    with app.app_context():
        row = Setting(key="photo.max_bytes", region_code=None, value=value)
        if ok:
            settings.validate(row, db.session)
        else:
            with pytest.raises(RuleError) as exc:
                settings.validate(row, db.session)
            assert exc.value.code == "invalid_setting"
    assert settings.display("photo.max_bytes", "2097152") == "2 MB"


def test_the_upload_form_needs_its_csrf_token(app, world, make_app):
    import re
    from tests.conftest import DEMO_PASSWORD
    secured = make_app(WTF_CSRF_ENABLED=True)
    c = secured.test_client()
    token = re.search(r'name="csrf_token"[^>]*?value="([^"]+)"', c.get("/login/").get_data(as_text=True)).group(1)
    c.post("/login/", data={"username": "school_a1_clerk", "password": DEMO_PASSWORD, "csrf_token": token})
    sid = world.student_of("a1")
    assert c.post(f"/student/photo/{sid}", data={"photo": (io.BytesIO(picture(400, 500)), "x.png")},
                  content_type="multipart/form-data").status_code == 400
    assert photo_of(app, sid) is None
    page = c.get(f"/student/show/{sid}").get_data(as_text=True)
    form = re.search(rf'<form[^>]*action="/student/photo/{sid}".*?</form>', page, re.S).group(0)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    assert not re.search(r"\son[a-z]+\s*=", form) and "<script" not in form      # no inline handlers (CSP)
    resp = c.post(f"/student/photo/{sid}", data={"photo": (io.BytesIO(picture(400, 500)), "x.png"),
                                                 "csrf_token": token}, content_type="multipart/form-data")
    assert resp.status_code == 302 and photo_of(app, sid) is not None
    # the API (JWT) needs no form token
    h = api_headers(secured.test_client(), "school_a1_clerk")
    resp = secured.test_client().post(f"/api/v1/student/{sid}/photo", headers=h,
                                      data={"photo": (io.BytesIO(picture(400, 500)), "x.png")},
                                      content_type="multipart/form-data")
    assert resp.status_code == 200, resp.get_json()

"""跨省转学 between two installations: signed transfer packages instead of a shared database.

Each installation holds an Ed25519 key (instance/exchange_key, generated once) and the public keys of the
provinces it exchanges with (settings `exchange.peer.<province code>`, set by the superadmin). A package is JSON:
{"type", "from", "to", "created", "body", "signature"}, the signature covering the canonical JSON of the rest.

  1. receiving province: 转入校 files `transfer_in`; after 转入校 → 转入地教育局 → 转入省 approve, it exports
     a `transfer_request` package;
  2. sending province imports it: a `transfer_out` request for the matched student (2001/2002/2003 apply); after
     转出校 → 转出地教育局 → 转出省 approve, the student leaves as 转出 and a `transfer_record` package (the full
     record, family members, enrollment history) can be downloaded;
  3. receiving province imports the record package: 调档 creates the student at the receiving school.
"""
import base64
import json
import os
from datetime import date, datetime
from decimal import Decimal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from flask import current_app
from sqlalchemy import inspect as sa_inspect, select

from app import clock, problems
from app.errors import RuleError
from app.identity import check_xjh, normalise
from app.students import applying_request, system_xjh
from app.workflow import Kind, register
from models import Guardian, School, SchoolClass, Student
from models.requests import Request
from models.student import Enrollment

RECORD_SKIP = {"id", "school_id", "class_id", "has_problem", "deleted_at", "delete_reason", "graduated_on", "cert_no"}


# --- keys and signatures ------------------------------------------------------------------------------------

def _key_path() -> str:
    return current_app.config.get("EXCHANGE_KEY_PATH") or os.path.join(current_app.instance_path, "exchange_key")


def private_key() -> Ed25519PrivateKey:
    path = _key_path()
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def public_key_text() -> str:
    raw = private_key().public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def _canonical(package: dict) -> bytes:
    return json.dumps({k: v for k, v in package.items() if k != "signature"}, ensure_ascii=False, sort_keys=True,
                      separators=(",", ":"), default=str).encode()


def _plain(value):
    """JSON-native values only, so the signed text survives any JSON round trip unchanged."""
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot put {type(value).__name__} in a package")


def seal(kind: str, from_province: str, to_province: str, body: dict) -> dict:
    body = json.loads(json.dumps(body, ensure_ascii=False, default=_plain))
    package = {"type": kind, "from": from_province, "to": to_province, "created": clock.now().isoformat(),
               "body": body}
    package["signature"] = base64.b64encode(private_key().sign(_canonical(package))).decode()
    return package


def open_package(session, data: bytes | str, expected_type: str, my_province: str) -> dict:
    """Parse and verify: known sender, addressed to us, the right type, an intact signature."""
    try:
        package = json.loads(data)
        sender = package["from"]
    except (ValueError, KeyError, TypeError):
        raise RuleError("不是有效的转学数据包", code="bad_package") from None
    if package.get("type") != expected_type:
        raise RuleError("数据包类型不符", code="bad_package")
    if package.get("to") != my_province:
        raise RuleError("该数据包不是发给本省的", code="bad_package")
    peer = _peer(session, sender)
    if not peer:
        raise RuleError(f"未登记省份{sender}的公钥，不能导入其数据包", code="unknown_peer")
    try:
        Ed25519PublicKey.from_public_bytes(base64.b64decode(peer)).verify(
            base64.b64decode(package.get("signature", "")), _canonical(package))
    except (InvalidSignature, ValueError):
        raise RuleError("数据包签名无效（内容被改动或不是对方系统签发）", code="bad_signature") from None
    return package


def _peer(session, province: str) -> str | None:
    from models import Setting
    return session.execute(select(Setting.value).where(Setting.key == f"exchange.peer.{province}",
                                                       Setting.region_code.is_(None))).scalar()


def my_province(session, school_id: int) -> str:
    return session.execute(select(School.province_code).where(School.id == school_id)).scalar()


# --- 1. receiving side: transfer_in ----------------------------------------------------------------------------

def _validate_in(session, student, payload) -> None:
    klass = session.get(SchoolClass, int(payload.get("class_id") or 0))
    if klass is None or klass.school_id != int(payload.get("to_school_id") or 0):
        raise RuleError("请选择转入学校的班级", code="class_required")
    if not payload.get("xjh") or not payload.get("name"):
        raise RuleError("请填写学生的19位学籍号和姓名", code="2001")
    check = check_xjh(payload.get("xjh"), generated=True)      # the other province assigned it (L allowed)
    if not check.valid:
        raise RuleError(f"2001：{check.message}", code="2001")
    if not payload.get("from_province"):
        raise RuleError("请选择转出省份", code="invalid")


def request_package(session, req: Request) -> dict:
    if req.kind != "transfer_in" or req.state != "已通过":
        raise RuleError("转入申请经本省审核通过后才能导出申请包", code="not_approved")
    payload = json.loads(req.payload)
    return seal("transfer_request", my_province(session, req.school_id), payload["from_province"],
                {"request_id": req.id, "xjh": normalise(payload["xjh"]), "name": payload["name"],
                 "to_school": session.get(School, req.school_id).name})


register(Kind(code="transfer_in", title="跨省转入", chain="transfer_in", validate=_validate_in,
              apply=lambda s, r, p: None, min_evidence=0, locks_student=False,
              describe=lambda s, st, p: f"跨省转入 {p.get('name')}（{normalise(p.get('xjh'))}）"))


# --- 2. sending side: transfer_out -----------------------------------------------------------------------------

def import_request(session, actor, data) -> Request:
    """The sending province files the other side's application as a local request about its student."""
    from app import workflow
    from app.scoping import scope_of
    scope = scope_of(actor)
    province = (scope.region_code or "")[:2] + "0000" if scope.kind == "region" else None
    if province is None:
        raise RuleError("由教育行政部门导入转学申请包", code="forbidden", status=403)
    package = open_package(session, data, "transfer_request", province)
    body = package["body"]
    student = session.scalars(select(Student).where(Student.xjh == body["xjh"],
                                                    Student.deleted_at.is_(None))).first()
    if student is None or student.name != body["name"]:
        raise RuleError("2001：学籍号与姓名不匹配", code="2001")
    payload = {"package": package, "peer_request_id": body["request_id"], "to_province": package["from"],
               "to_school": body["to_school"]}
    return workflow.file(session, actor, "transfer_out", student, payload, (), "导入外省转学申请包",
                         school_id=student.school_id)


def _validate_out(session, student, payload) -> None:
    problems.blocks(session, student.id)
    if student.status != "在校":
        raise RuleError(f"该生学籍状态为“{student.status}”，不能转学", code="wrong_status")


def _apply_out(session, req, payload) -> None:
    student = session.get(Student, req.student_id)
    for span in session.scalars(select(Enrollment).where(Enrollment.student_id == student.id,
                                                         Enrollment.current == 1)):
        span.status, span.ended_on, span.current = "转出", clock.today(), None
        span.reason = f"跨省转出至{payload['to_school']} #{req.id}"
    with applying_request(session):
        student.status, student.class_id = "转出", None
        session.flush()


def record_package(session, req: Request) -> dict:
    """The student's record for the receiving province, once the sending side has approved."""
    if req.kind != "transfer_out" or req.state != "已通过":
        raise RuleError("转出申请审核通过后才能导出档案包", code="not_approved")
    payload = json.loads(req.payload)
    student = session.get(Student, req.student_id)
    columns = [a.key for a in sa_inspect(Student).column_attrs if a.key not in RECORD_SKIP]
    record = {k: getattr(student, k) for k in columns}
    record["status"] = "在校"
    guardians = [{a.key: getattr(g, a.key) for a in sa_inspect(Guardian).column_attrs
                  if a.key not in ("id", "student_id")} for g in student.guardians]
    history = [{"school": e.school.name, "stage": e.stage, "cohort": e.cohort_year, "status": e.status,
                "from": str(e.started_on), "to": str(e.ended_on or ""), "reason": e.reason}
               for e in sorted(student.enrollments, key=lambda e: e.id)]
    return seal("transfer_record", my_province(session, req.school_id), payload["to_province"],
                {"request_id": payload["peer_request_id"], "record": record, "guardians": guardians,
                 "history": history, "from_school": student.school.name})


register(Kind(code="transfer_out", title="跨省转出", chain="transfer_out", validate=_validate_out, apply=_apply_out,
              min_evidence=0, filer_role="教育局经办",
              describe=lambda s, st, p: f"跨省转出 {st.name}（{st.xjh}）至{p.get('to_school', '')}"))


# --- 3. receiving side: 调档 ------------------------------------------------------------------------------------

def import_record(session, actor, data) -> Student:
    from app.scoping import system_write
    from app.roles import ROLE_SCHOOL_REGISTRAR
    if ROLE_SCHOOL_REGISTRAR not in {r.name for r in actor.roles} or not actor.school_id:
        raise RuleError("由转入学校学籍管理员调档", code="forbidden", status=403)
    package = open_package(session, data, "transfer_record", my_province(session, actor.school_id))
    body = package["body"]
    req = session.get(Request, int(body["request_id"]))
    if req is None or req.kind != "transfer_in" or req.school_id != actor.school_id or req.state != "已通过":
        raise RuleError("找不到本校对应的已审核转入申请", code="not_found", status=404)
    payload = json.loads(req.payload)
    if payload.get("transferred"):
        raise RuleError("该生已调档", code="duplicate")
    record = dict(body["record"])
    record["birth_date"] = date.fromisoformat(record["birth_date"])
    if record.get("distance_km") is not None:
        record["distance_km"] = Decimal(record["distance_km"])
    klass = session.get(SchoolClass, int(payload["class_id"]))
    with system_write(session), system_xjh(session), \
            applying_request(session, f"跨省转入调档 #{req.id}（自{body['from_school']}）"):
        student = Student(**record, school_id=req.school_id, class_id=klass.id)
        student.guardians = [Guardian(**g) for g in body["guardians"]]
        session.add(student)
        session.flush()
        req.student_id = student.id
        req.payload = json.dumps({**payload, "transferred": True, "history": body["history"]}, ensure_ascii=False)
        req.summary = (req.summary + "（已调档）")[:300]
    session.commit()
    return student

"""跨省转学 between two installations: signed transfer packages instead of a shared database.

Each installation holds an Ed25519 key (config EXCHANGE_KEY_PATH, default instance/exchange_key, generated once)
and the public keys of the provinces it exchanges with (ExchangePeer rows: 系统管理 → 跨省交换, the API
/api/v1/exchangepeer/ or `flask --app run xueji exchange-peer`, superadmin only; one live key per province, a
revoked key's packages are refused). A package is JSON: {"type", "from", "to", "created", "body", "signature"},
the signature covering the canonical JSON of the rest; it is valid for `exchange.package_days` days.

  1. receiving province: 转入校 files `transfer_in`; after 转入校 → 转入地教育局 → 转入省 approve, it exports
     a `transfer_request` package;
  2. sending province imports it: a `transfer_out` request for the matched student (2001/2002/2003 apply); after
     转出校 → 转出地教育局 → 转出省 approve, the student leaves as 转出 and a `transfer_record` package (the full
     record, family members, enrollment history) can be downloaded;
  3. receiving province imports the record package: 调档 creates the student at the receiving school, in a class
     of the student's own grade with a free seat (the 班额 check under the class row lock, app.classes), with the
     earlier enrollment spans of the other province in its history.
"""
import base64
import binascii
import hashlib
import json
import os
from datetime import date, datetime, timedelta
from decimal import Decimal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from flask import current_app
from sqlalchemy import inspect as sa_inspect, null, select
from sqlalchemy.exc import IntegrityError

from app import clock, problems, settings
from app.errors import RuleError
from app.service import service
from app.identity import check_xjh, normalise
from app.students import applying_request, system_xjh
from app.workflow import Kind, register
from models import Guardian, School, SchoolClass, Student
from models.exchange import ExchangePeer
from models.requests import Request
from models.student import Enrollment

RECORD_SKIP = {"id", "school_id", "class_id", "has_problem", "deleted_at", "delete_reason", "graduated_on", "cert_no"}


# --- keys and signatures ------------------------------------------------------------------------------------

def _key_path() -> str:
    """config EXCHANGE_KEY_PATH (environment variable of the same name): two installations on one machine keep
    separate keys; default instance/exchange_key."""
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


def fingerprint(raw: bytes) -> str:
    """SHA-256 of the raw 32-byte key in groups of four, for reading out over the phone."""
    digest = hashlib.sha256(raw).hexdigest().upper()
    return " ".join(digest[i:i + 4] for i in range(0, len(digest), 4))


def my_fingerprint() -> str:
    return fingerprint(base64.b64decode(public_key_text()))


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


def open_package(session, data: bytes | str, expected_type: str, my_province: str,
                 county_code: str | None = None) -> dict:
    """Parse and verify: addressed to us, the right type, signed by the sender's live key, not expired."""
    try:
        package = json.loads(data)
        sender = package["from"]
        created = datetime.fromisoformat(package["created"])
    except (ValueError, KeyError, TypeError):
        raise RuleError("不是有效的转学数据包", code="bad_package") from None
    if package.get("type") != expected_type:
        raise RuleError("数据包类型不符", code="bad_package")
    if package.get("to") != my_province:
        raise RuleError("该数据包不是发给本省的", code="bad_package")
    _verify(session, package, str(sender))
    days = settings.get_int(session, "exchange.package_days", county_code)
    now = clock.now()
    if created.tzinfo is not None:
        created = created.astimezone().replace(tzinfo=None)
    if now - created > timedelta(days=days):
        raise RuleError(f"数据包已超过{days}天有效期（生成于{created:%Y-%m-%d %H:%M}），请对方重新生成后再导入",
                        code="expired_package")
    if created - now > timedelta(days=1):
        raise RuleError(f"数据包的生成时间（{created:%Y-%m-%d %H:%M}）晚于本系统当前时间，请核对双方系统时间",
                        code="bad_package")
    return package


def _signed_by(package: dict, key_text: str) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(base64.b64decode(key_text)).verify(
            base64.b64decode(package.get("signature") or ""), _canonical(package))
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


def _verify(session, package: dict, sender: str) -> None:
    peers = list(session.scalars(select(ExchangePeer).where(ExchangePeer.province_code == sender)
                                 .order_by(ExchangePeer.id)))
    live = next((p for p in peers if p.live == 1 and p.revoked_at is None), None)
    if live is not None and _signed_by(package, live.public_key):
        return
    revoked = [p for p in peers if p.revoked_at is not None]
    old = next((p for p in reversed(revoked) if _signed_by(package, p.public_key)), None)
    if old is not None:
        raise RuleError(f"该数据包由{old.name}（{old.province_code}）已于{old.revoked_at:%Y-%m-%d}撤销的公钥"
                        f"（指纹{old.fingerprint[:19]}…）签名，不能导入；请对方用现行密钥重新生成数据包",
                        code="revoked_peer")
    if live is None and revoked:
        last = revoked[-1]
        raise RuleError(f"{last.name}（{last.province_code}）的公钥已于{last.revoked_at:%Y-%m-%d}撤销，"
                        "不能导入其数据包；请系统管理员在“跨省交换”登记其新公钥", code="revoked_peer")
    if live is None:
        raise RuleError(f"未登记省份{sender}的公钥，不能导入其数据包；请系统管理员在“跨省交换”登记",
                        code="unknown_peer")
    raise RuleError("数据包签名无效（内容被改动或不是对方系统签发）", code="bad_signature")


# --- 跨省交换: the peers (one service function per use case; web, API and CLI call these) --------------------

def _is_admin(actor) -> bool:
    from app.scoping import ROLE_ADMIN
    return actor is None or any(r.name == ROLE_ADMIN for r in actor.roles)     # None: the CLI (a system job)


def _require_admin(actor) -> None:
    if not _is_admin(actor):
        raise RuleError("只有系统管理员可以维护跨省交换的公钥", code="forbidden", status=403)


def _who(actor) -> str:
    return actor.username if actor is not None else "命令行"


def parse_public_key(text) -> bytes:
    """The other side's key as its exchange page shows it (base64 of the raw 32-byte Ed25519 key)."""
    compact = "".join(str(text or "").split())
    if not compact:
        raise RuleError("请粘贴对方系统“跨省转学数据包”页面显示的公钥", code="invalid")
    try:
        raw = base64.b64decode(compact, validate=True)
        if len(raw) != 32:
            raise ValueError
        Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise RuleError("公钥格式不正确：应为对方系统“跨省转学数据包”页面显示的Ed25519公钥"
                        "（44个字符的Base64文本，以“=”结尾）", code="invalid_key") from None
    return raw


def province_name(session, code: str) -> str | None:
    """The province's name from the region table, else from GB/T 2260 (python-stdnum's table)."""
    from models import Region
    name = session.execute(select(Region.name).where(Region.code == code)).scalar()
    if name:
        return name
    from stdnum import numdb
    try:
        for _part, props in numdb.get("cn/loc").info(code):
            if props.get("province"):
                return props["province"]
    except Exception:                    # noqa: BLE001 - unknown: the caller names it or refuses
        pass
    return None


def live_peer(session, province_code: str) -> ExchangePeer | None:
    return session.scalars(select(ExchangePeer).where(ExchangePeer.province_code == province_code,
                                                      ExchangePeer.live == 1)).first()


def list_peers(session, actor) -> list[ExchangePeer]:
    _require_admin(actor)
    return list(session.scalars(select(ExchangePeer).order_by(ExchangePeer.live.is_(None), ExchangePeer.province_code,
                                                              ExchangePeer.id.desc())))


@service
def add_peer(session, actor, province_code, public_key, name=None) -> ExchangePeer:
    """登记: the other province's code and the public key its exchange page shows. Commits."""
    _require_admin(actor)
    code = "".join(str(province_code or "").split())
    if not (len(code) == 6 and code.isdigit() and code.endswith("0000")):
        raise RuleError("省份代码应为6位省级行政区划代码，如420000（湖北省）", code="invalid")
    known = province_name(session, code)
    name = (known or (name or "").strip())[:50]
    if not name:
        raise RuleError(f"{code}不是已知的省级行政区划代码，请核对", code="invalid")
    raw = parse_public_key(public_key)
    text = base64.b64encode(raw).decode()
    if text == public_key_text():
        raise RuleError("这是本系统自己的公钥，请粘贴对方系统显示的公钥", code="invalid_key")
    current = live_peer(session, code)
    if current is not None:
        raise RuleError(f"{current.name}（{code}）已登记公钥（指纹{current.fingerprint[:19]}…），"
                        "如需更换请先撤销", code="duplicate", status=409)
    same = session.scalars(select(ExchangePeer).where(ExchangePeer.public_key == text,
                                                      ExchangePeer.live == 1)).first()
    if same is not None:
        raise RuleError(f"该公钥已登记为{same.name}（{same.province_code}）的公钥", code="duplicate", status=409)
    peer = ExchangePeer(province_code=code, name=name, public_key=text, fingerprint=fingerprint(raw), live=1,
                        added_by=_who(actor), added_at=clock.now())
    try:
        with session.begin_nested():
            session.add(peer)
            session.flush()
    except IntegrityError:               # another superadmin registered the province at the same moment
        raise RuleError(f"{name}（{code}）已登记公钥，如需更换请先撤销", code="duplicate", status=409) from None
    return peer


@service
def revoke_peer(session, actor, peer_id) -> ExchangePeer:
    """撤销: the key stays on record (revoked_at, revoked_by); its packages are refused from now on. Commits."""
    _require_admin(actor)
    try:
        peer = session.get(ExchangePeer, int(peer_id))
    except (TypeError, ValueError):
        peer = None
    if peer is None:
        raise RuleError("该省份公钥不存在", code="not_found", status=404)
    if peer.revoked_at is not None:
        raise RuleError(f"{peer.name}（{peer.province_code}）的这把公钥已于{peer.revoked_at:%Y-%m-%d}撤销",
                        code="already_revoked", status=409)
    peer.live, peer.revoked_at, peer.revoked_by = None, clock.now(), _who(actor)
    return peer


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
    klass = session.get(SchoolClass, int(payload.get("class_id") or 0))
    body = {"request_id": req.id, "xjh": normalise(payload["xjh"]), "name": payload["name"],
            "to_school": session.get(School, req.school_id).name}
    if klass is not None:            # the sending side refuses a student of another grade before anyone approves
        body.update(stage=klass.stage, cohort=klass.cohort_year, to_class=klass.name)
    return seal("transfer_request", my_province(session, req.school_id), payload["from_province"], body)


def _grade_mismatch(stage, cohort, klass: SchoolClass) -> str | None:
    if stage == klass.stage and cohort is not None and int(cohort) == klass.cohort_year:
        return None
    return (f"年级不符：该生为{cohort}级（{stage}），所选班级为{klass.cohort_year}级{klass.name}（{klass.stage}），"
            f"跨省转学不能变更就读年级，请选择{cohort}级的班级")


register(Kind(code="transfer_in", title="跨省转入", chain="transfer_in", validate=_validate_in,
              apply=lambda s, r, p: None, min_evidence=0, locks_student=False,
              describe=lambda s, st, p: f"跨省转入 {p.get('name')}（{normalise(p.get('xjh'))}）"))


# --- 2. sending side: transfer_out -----------------------------------------------------------------------------

@service
def import_request(session, actor, data) -> Request:
    """The sending province files the other side's application as a local request about its student."""
    from app import workflow
    from app.scoping import scope_of
    scope = scope_of(actor)
    province = (scope.region_code or "")[:2] + "0000" if scope.kind == "region" else None
    if province is None:
        raise RuleError("由教育行政部门导入转学申请包", code="forbidden", status=403)
    package = open_package(session, data, "transfer_request", province,
                           scope.region_code if scope.region_level == "county" else None)
    body = package["body"]
    student = session.scalars(select(Student).where(Student.xjh == body["xjh"],
                                                    Student.deleted_at.is_(None))).first()
    if student is None or student.name != body["name"]:
        raise RuleError("2001：学籍号与姓名不匹配", code="2001")
    if body.get("cohort") is not None and (student.stage != body.get("stage") or
                                           student.cohort_year != int(body["cohort"])):
        raise RuleError(f"年级不符：该生为{student.cohort_year}级（{student.stage}），转入学校所选班级为"
                        f"{body['cohort']}级{body.get('to_class', '')}（{body.get('stage')}），跨省转学不能变更就读年级",
                        code="grade_change")
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

@service
def import_record(session, actor, data, class_id=None) -> Student:
    """调档: the record package of the other province becomes this school's student, placed like any other
    placement: a class of the student's own grade (stage and cohort) with a free seat (app.classes.check_room,
    under the class row lock). `class_id` chooses another class of the school than the application named (a
    class that filled up meanwhile). The student's earlier spans arrive in its enrollment history, marked （外省）."""
    from app.classes import check_room
    from app.scoping import system_write
    from app.roles import ROLE_SCHOOL_REGISTRAR
    if ROLE_SCHOOL_REGISTRAR not in {r.name for r in actor.roles} or not actor.school_id:
        raise RuleError("由转入学校学籍管理员调档", code="forbidden", status=403)
    county = session.execute(select(School.county_code).where(School.id == actor.school_id)).scalar()
    package = open_package(session, data, "transfer_record", my_province(session, actor.school_id), county)
    body = package["body"]
    # the request row is locked first: a second import of the same package at the same moment waits here, then
    # finds it transferred (instead of colliding on the 学籍号 with a 500)
    req_id = session.execute(select(Request.id).where(Request.id == int(body["request_id"])).with_for_update()).scalar()
    req = session.get(Request, req_id, populate_existing=True) if req_id else None
    if req is None or req.kind != "transfer_in" or req.school_id != actor.school_id or req.state != "已通过":
        raise RuleError("找不到本校对应的已审核转入申请", code="not_found", status=404)
    payload = json.loads(req.payload)
    if payload.get("transferred"):
        raise RuleError("该生已调档", code="duplicate")
    record = dict(body["record"])
    try:
        record["birth_date"] = date.fromisoformat(record["birth_date"])
        left = datetime.fromisoformat(package["created"]).date()
        history = [_outside_span(span, package["from"], left, session) for span in body.get("history") or ()]
    except (KeyError, TypeError, ValueError):
        raise RuleError("档案包内容不完整（出生日期或学籍变动历史无法读取）", code="bad_package") from None
    if record.get("distance_km") is not None:
        record["distance_km"] = Decimal(record["distance_km"])
    try:
        klass = session.get(SchoolClass, int(class_id or payload["class_id"]))
    except (TypeError, ValueError):
        klass = None
    if klass is None or klass.school_id != req.school_id:
        raise RuleError("请选择本校的班级", code="class_required")
    mismatch = _grade_mismatch(record.get("stage"), record.get("cohort_year"), klass)
    if mismatch:
        raise RuleError(mismatch, code="grade_change")
    check_room(session, klass.id, 1)                 # 班额, under the class row lock like every placement
    reason = f"跨省转入调档 #{req.id}（自{body['from_school']}）"
    with system_write(session), system_xjh(session), applying_request(session, reason):
        student = Student(**record, school_id=req.school_id, class_id=klass.id)
        student.guardians = [Guardian(**g) for g in body["guardians"]]
        # the other province's spans first (their ids, and so the history page, come before the new span)
        # (current=null(): an explicit NULL, which the column default of 1 would otherwise replace)
        student.enrollments = [Enrollment(school_id=req.school_id, current=null(), **span) for span in history]
        session.add(student)
        try:
            with session.begin_nested():
                session.flush()
        except IntegrityError:
            raise RuleError(f"学籍号{record.get('xjh')}的学生已在本系统中，不能再次调档", code="duplicate",
                            status=409) from None
        for span in student.enrollments:
            if span.current == 1:
                span.reason = reason[:200]
        req.student_id = student.id
        req.payload = json.dumps({**payload, "class_id": klass.id, "transferred": True, "history": body["history"]},
                                 ensure_ascii=False)
        req.summary = (req.summary + "（已调档）")[:300]
        session.flush()
    return student


def _outside_span(span: dict, province: str, left: date, session) -> dict:
    """An enrollment span of the other province as a local Enrollment's values: its school does not exist here,
    so the span is filed under the receiving school and its reason names the province and the school. A span
    still open there (the 转出 span) ends on the day the package was made."""
    name = province_name(session, province) or province
    parts = [p for p in (span.get("status"), span.get("reason")) if p]
    reason = f"（外省）{name} {span.get('school') or ''}：{'；'.join(parts)}"
    return dict(stage=span["stage"], cohort_year=int(span["cohort"]), status=span.get("status") or "转出",
                started_on=date.fromisoformat(span["from"]),
                ended_on=date.fromisoformat(span["to"]) if span.get("to") else left, reason=reason[:200])


# --- CLI: flask --app run xueji exchange-peer add|revoke|list (the same service functions and messages) -----------

def _register_cli() -> None:
    import click
    from flask.cli import with_appcontext

    from app.cli import xueji
    from app.extensions import db

    if "exchange-peer" in xueji.commands:
        return

    @xueji.group("exchange-peer")
    def exchange_peer():
        """跨省交换: the provinces whose 跨省转学 packages this installation accepts."""

    def run(fn):
        try:
            return fn()
        except RuleError as exc:
            db.session.rollback()
            raise click.ClickException(exc.message) from None

    def show(p):
        state = f"已撤销 {p.revoked_at:%Y-%m-%d %H:%M}（{p.revoked_by}）" if p.revoked_at else "有效"
        click.echo(f"{p.id}\t{p.province_code}\t{p.name}\t{p.fingerprint}\t{p.added_by}\t"
                   f"{p.added_at:%Y-%m-%d %H:%M}\t{state}")

    @exchange_peer.command("list")
    @with_appcontext
    def list_command():
        """List the registered provinces (id, code, name, fingerprint, added by, added at, state)."""
        for p in run(lambda: list_peers(db.session, None)):
            show(p)

    @exchange_peer.command("add")
    @click.argument("province_code")
    @click.argument("public_key")
    @click.option("--name", default=None, help="省份名称（代码不在行政区划表中时）")
    @with_appcontext
    def add_command(province_code, public_key, name):
        """Register PROVINCE_CODE's PUBLIC_KEY (the text its exchange page shows)."""
        show(run(lambda: add_peer(db.session, None, province_code, public_key, name)))

    @exchange_peer.command("revoke")
    @click.argument("peer_id", type=int)
    @with_appcontext
    def revoke_command(peer_id):
        """Revoke the key with this id (see list); its packages are refused from now on."""
        show(run(lambda: revoke_peer(db.session, None, peer_id)))


_register_cli()

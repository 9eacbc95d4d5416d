"""Requests (申请) and their approval chains: one engine (app.workflow) for every kind of request in the
product: 关键数据变更, 问题学籍处理, and later 学籍异动, 转学, 招生 … A chain is data (ChainStep rows)."""
from datetime import datetime

from flask_appbuilder.models.sqla import Model
from sqlalchemy import Column, Date, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import relationship

# states
PENDING, APPROVED, REJECTED, RETURNED, WITHDRAWN, CLEARED = "审核中", "已通过", "不通过", "退回修改", "已撤销", "已清理"
OPEN_STATES = (PENDING, RETURNED, REJECTED)        # the student's 在办业务 lock holds in these
PROBLEM_KINDS = {"invalid_id": "身份证件号错误", "id_mismatch": "证件号与性别或出生日期不符",
                 "dup_id": "身份证件号重复", "dup_identity": "无证件号学生姓名、性别、出生日期重复"}
# parties a step can name (resolved against the request's filing / counterpart school)
PARTIES = {"school": "本校", "bureau": "本校所在区县教育局", "counterpart_school": "对方学校",
           "counterpart_bureau": "对方区县教育局", "city": "地市教育局", "province": "省教育厅"}


class Chain(Model):
    __tablename__ = "wf_chain"
    __scope__ = "public"
    code = Column(String(30), primary_key=True)
    name = Column(String(50), nullable=False)
    steps = relationship("ChainStep", order_by="ChainStep.seq", lazy="selectin", cascade="all, delete-orphan",
                         back_populates="chain")

    def __repr__(self) -> str:
        return self.name


class ChainStep(Model):
    __tablename__ = "wf_chain_step"
    __scope__ = "public"
    __table_args__ = (UniqueConstraint("chain_code", "seq", name="uq_chain_step_seq"),)
    id = Column(Integer, primary_key=True)
    chain_code = Column(String(30), ForeignKey("wf_chain.code", ondelete="CASCADE"), nullable=False)
    seq = Column(Integer, nullable=False)
    name = Column(String(50), nullable=False)           # 学校审核, 区县审核 …
    party = Column(String(30), nullable=False)          # key of PARTIES
    role = Column(String(64), nullable=False)           # the role that decides this step
    due_days = Column(Integer, nullable=False, default=10)
    chain = relationship("Chain", back_populates="steps")


class Request(Model):
    __tablename__ = "wf_request"
    __scope__ = "request"
    __table_args__ = (Index("ix_request_school_state", "school_id", "state"),
                      Index("ix_request_counterpart_state", "counterpart_school_id", "state"),
                      Index("ix_request_student_state", "student_id", "state"),
                      # 在办业务: at most one open request of a locking kind per student, held by the database
                      UniqueConstraint("student_lock", name="uq_request_student_lock"))
    id = Column(Integer, primary_key=True)
    kind = Column(String(30), nullable=False, index=True)        # key_change, problem_proof …
    subtype = Column(String(20), nullable=True, index=True)      # e.g. the 学籍异动 type (休学 …), for statistics
    chain_code = Column(String(30), ForeignKey("wf_chain.code"), nullable=False)
    student_id = Column(Integer, ForeignKey("student.id"), nullable=True)
    school_id = Column(Integer, ForeignKey("school.id"), nullable=False)            # filing school
    counterpart_school_id = Column(Integer, ForeignKey("school.id"), nullable=True)
    state = Column(String(10), nullable=False, default=PENDING)
    step_seq = Column(Integer, nullable=False, default=1)        # the step waiting for a decision
    step_due_on = Column(Date, nullable=True)
    payload = Column(Text, nullable=False, default="{}")         # JSON: old/new values, reasons …
    summary = Column(String(300), nullable=False, default="")
    filed_by_id = Column(Integer, ForeignKey("ab_user.id"), nullable=False)
    filed_at = Column(DateTime, nullable=False, default=datetime.now)
    closed_at = Column(DateTime, nullable=True)
    version = Column(Integer, nullable=False, default=1)         # optimistic lock: one transition per version
    # the student's id while this request holds their 在办业务 lock (open and of a locking kind), else NULL
    student_lock = Column(Integer, nullable=True)
    chain = relationship("Chain", lazy="joined")
    student = relationship("Student", lazy="joined")
    school = relationship("School", foreign_keys=[school_id], lazy="joined")
    counterpart_school = relationship("School", foreign_keys=[counterpart_school_id])
    filed_by = relationship("XuejiUser", foreign_keys=[filed_by_id], lazy="joined")
    history = relationship("RequestStep", order_by="RequestStep.id", lazy="selectin")
    evidence = relationship("Evidence", order_by="Evidence.id", lazy="selectin")

    def __repr__(self) -> str:
        return f"#{self.id} {self.summary}"


class RequestStep(Model):
    """History: every submission and decision, never changed afterwards."""
    __tablename__ = "wf_request_step"
    __scope__ = "via_request"
    id = Column(Integer, primary_key=True)
    request_id = Column(Integer, ForeignKey("wf_request.id", ondelete="CASCADE"), nullable=False, index=True)
    seq = Column(Integer, nullable=False)
    step_name = Column(String(50), nullable=False)
    actor_id = Column(Integer, ForeignKey("ab_user.id"), nullable=True)
    actor_name = Column(String(128), nullable=True)
    role = Column(String(64), nullable=True)
    decision = Column(String(10), nullable=False)       # 提交 通过 不通过 退回修改 撤销 重新提交 清理
    comment = Column(String(500), nullable=True)
    at = Column(DateTime, nullable=False, default=datetime.now)


class Evidence(Model):
    """An evidence file (ID card, 户口本, certificate …): checked by content, stored outside static/."""
    __tablename__ = "evidence"
    __scope__ = "school"
    id = Column(Integer, primary_key=True)
    school_id = Column(Integer, ForeignKey("school.id"), nullable=False, index=True)
    request_id = Column(Integer, ForeignKey("wf_request.id", ondelete="SET NULL"), nullable=True, index=True)
    student_id = Column(Integer, ForeignKey("student.id"), nullable=True, index=True)
    stored_name = Column(String(80), nullable=False, unique=True)
    original_name = Column(String(200), nullable=False)
    mime = Column(String(50), nullable=False)
    size = Column(Integer, nullable=False)
    sha256 = Column(String(64), nullable=False)
    uploaded_by_id = Column(Integer, ForeignKey("ab_user.id"), nullable=True)
    uploaded_at = Column(DateTime, nullable=False, default=datetime.now)

    def __repr__(self) -> str:
        return self.original_name


class Problem(Model):
    """问题学籍: one open row per student and kind (`current` = 1 while open, NULL when closed)."""
    __tablename__ = "problem"
    __scope__ = "school"
    __table_args__ = (UniqueConstraint("student_id", "kind", "current", name="uq_problem_open"),
                      Index("ix_problem_school_state", "school_id", "state"))
    id = Column(Integer, primary_key=True)
    student_id = Column(Integer, ForeignKey("student.id", ondelete="CASCADE"), nullable=False, index=True)
    school_id = Column(Integer, ForeignKey("school.id"), nullable=False)
    kind = Column(String(20), nullable=False)            # invalid_id, id_mismatch, dup_id, dup_identity
    detail = Column(String(300), nullable=False)
    state = Column(String(10), nullable=False, default="待处理")   # 待处理 处理中 已解决
    resolution = Column(String(10), nullable=True)       # 变更 佐证 删除 复核通过
    request_id = Column(Integer, ForeignKey("wf_request.id", ondelete="SET NULL"), nullable=True)
    detected_at = Column(DateTime, nullable=False, default=datetime.now)
    resolved_at = Column(DateTime, nullable=True)
    current = Column(Integer, nullable=True, default=1)
    student = relationship("Student", lazy="joined")
    school = relationship("School", lazy="joined")

    @property
    def kind_label(self) -> str:
        return PROBLEM_KINDS.get(self.kind, self.kind)

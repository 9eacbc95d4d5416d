"""招生入学: admission plans (招生计划数), uploaded batches and admissions. A new 初一/高一 student continues their
existing 学籍: an admission points at the existing Student and, once approved, 调档 moves the record."""
from datetime import datetime

from flask_appbuilder.models.sqla import Model
from sqlalchemy import Column, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import relationship

# admission states
TO_CONFIRM, TO_REVIEW, TRANSFERRED, CONFLICT, CANCELLED = "待确认", "待审核", "已调档", "冲突", "已取消"
ACTIVE = (TO_CONFIRM, TO_REVIEW, TRANSFERRED, CONFLICT)


class Quota(Model):
    """招生计划数: set by the county per school, year and stage; the used number is counted, never stored."""
    __tablename__ = "quota"
    __scope__ = "school"
    __table_args__ = (UniqueConstraint("school_id", "year", "stage", name="uq_quota_school_year_stage"),)
    id = Column(Integer, primary_key=True)
    school_id = Column(Integer, ForeignKey("school.id"), nullable=False, index=True)
    year = Column(Integer, nullable=False)                 # admission (entry) year = the new cohort
    stage = Column(String(4), nullable=False)
    planned = Column(Integer, nullable=False)
    school = relationship("School", lazy="joined")

    def __repr__(self) -> str:
        return f"{self.year}年{self.stage}招生计划 {self.planned}人"


class ImportBatch(Model):
    """One uploaded template (kept), its check result and its fate. Re-uploading the same file finds the same
    batch (school, kind, sha256), so nothing is created twice."""
    __tablename__ = "import_batch"
    __scope__ = "school"
    __table_args__ = (UniqueConstraint("school_id", "kind", "sha256", name="uq_batch_file"),)
    id = Column(Integer, primary_key=True)
    school_id = Column(Integer, ForeignKey("school.id"), nullable=False, index=True)
    kind = Column(String(20), nullable=False)              # admission | placement
    method = Column(String(10), nullable=False, default="自主招生")
    year = Column(Integer, nullable=False)
    stage = Column(String(4), nullable=False)
    filename = Column(String(200), nullable=False)
    stored_name = Column(String(80), nullable=False)
    sha256 = Column(String(64), nullable=False)
    rows = Column(Integer, nullable=False, default=0)
    valid_rows = Column(Integer, nullable=False, default=0)
    error_count = Column(Integer, nullable=False, default=0)
    state = Column(String(10), nullable=False, default="已校验")   # 已校验 已提交 已通过 已驳回
    request_id = Column(Integer, ForeignKey("wf_request.id", ondelete="SET NULL"), nullable=True)
    uploaded_by_id = Column(Integer, ForeignKey("ab_user.id"), nullable=True)
    uploaded_at = Column(DateTime, nullable=False, default=datetime.now)
    committed_at = Column(DateTime, nullable=True)
    school = relationship("School", lazy="joined")

    def __repr__(self) -> str:
        return f"#{self.id} {self.filename}"


class RosterBatch(Model):
    """小学毕业生名单: one county's roster of primary-school graduates as uploaded (kept), checked and imported. The
    same file for the same county is the same batch; importing again updates by 学籍号 (app.rosters)."""
    __tablename__ = "roster_batch"
    __scope__ = "county"
    __table_args__ = (UniqueConstraint("county_code", "sha256", name="uq_roster_file"),)
    id = Column(Integer, primary_key=True)
    county_code = Column(String(6), ForeignKey("region.code"), nullable=False, index=True)
    year = Column(Integer, nullable=False)                 # 毕业年份 = the 初一 entry cohort it feeds
    filename = Column(String(200), nullable=False)
    stored_name = Column(String(80), nullable=False)
    sha256 = Column(String(64), nullable=False)
    rows = Column(Integer, nullable=False, default=0)
    valid_rows = Column(Integer, nullable=False, default=0)
    error_count = Column(Integer, nullable=False, default=0)
    created = Column(Integer, nullable=False, default=0)   # graduates added by the import
    updated = Column(Integer, nullable=False, default=0)   # graduates already held, updated by 学籍号
    state = Column(String(10), nullable=False, default="已校验")   # 已校验 已导入
    uploaded_by_id = Column(Integer, ForeignKey("ab_user.id"), nullable=True)
    uploaded_at = Column(DateTime, nullable=False, default=datetime.now)
    committed_at = Column(DateTime, nullable=True)
    county = relationship("Region", lazy="joined")

    def __repr__(self) -> str:
        return f"#{self.id} {self.filename}"


class Admission(Model):
    """录取: a student admitted by a school for a year. `current` is 1 while active, NULL once cancelled, so a
    school admits a student at most once a year (UNIQUE student, school, year, current)."""
    __tablename__ = "admission"
    __scope__ = "school"
    __table_args__ = (UniqueConstraint("student_id", "school_id", "year", "current", name="uq_admission_active"),
                      # one admission holds a student per admission year (claim = 1); latecomers are NULL and 冲突
                      UniqueConstraint("student_id", "year", "claim", name="uq_admission_claim"),
                      Index("ix_admission_school_year_state", "school_id", "year", "state"),
                      Index("ix_admission_student_year", "student_id", "year"))
    id = Column(Integer, primary_key=True)
    student_id = Column(Integer, ForeignKey("student.id"), nullable=False)
    school_id = Column(Integer, ForeignKey("school.id"), nullable=False)
    year = Column(Integer, nullable=False)
    stage = Column(String(4), nullable=False)
    method = Column(String(10), nullable=False, default="自主招生")     # 自主招生 | 统一招生
    state = Column(String(10), nullable=False, default=TO_REVIEW)
    batch_id = Column(Integer, ForeignKey("import_batch.id", ondelete="SET NULL"), nullable=True, index=True)
    source_row = Column(Integer, nullable=True)
    created_at = Column(DateTime, nullable=False, default=datetime.now)
    decided_at = Column(DateTime, nullable=True)
    note = Column(String(200), nullable=True)
    current = Column(Integer, nullable=True, default=1)
    # 1 on the one admission that holds the student for the year (the first, or the one arbitration keeps); NULL on
    # the others and once cancelled. UNIQUE(student, year, claim) makes a second holder impossible on every database
    # (NULLs never collide; MariaDB has no partial indexes), so two schools committing at once cannot both win.
    claim = Column(Integer, nullable=True)
    # the county review (录取名单审核) that moves it at 调档; NULL until filed (统一招生 before the school confirms)
    request_id = Column(Integer, ForeignKey("wf_request.id", ondelete="SET NULL"), nullable=True, index=True)
    student = relationship("Student", lazy="joined")
    school = relationship("School", lazy="joined")

"""学籍统计快照: the per-class GROUP BY of app/statistics.py stored for province and city bureaus, whose live pass
over millions of students takes seconds (docs/PERFORMANCE.md, statistics).

A refresh writes a whole new snapshot — its rows carry the refresh's id — and drops the older ones in the same
transaction; readers take the newest finished refresh, so they see the old snapshot or the new one, never half."""
from datetime import datetime

from flask_appbuilder.models.sqla import Model
from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, String

STATES = {"queued": "排队中", "done": "已完成", "failed": "失败"}


class StatisticsRefresh(Model):
    """One refresh: asked for (queued: waiting or running), finished (done: its rows are the snapshot, `as_of`
    the moment it read the students) or failed (its transaction rolled back; the previous snapshot stays)."""
    __tablename__ = "statistics_refresh"
    __scope__ = "public"             # no screen lists it; the page shows only the newest one's times
    __table_args__ = (Index("ix_statistics_refresh_state_id", "state", "id"),)   # the newest done / queued one
    id = Column(Integer, primary_key=True)
    state = Column(String(10), nullable=False, default="queued")
    requested_at = Column(DateTime, nullable=False, default=datetime.now)
    requested_by = Column(String(64))                  # the account's username; NULL: the command line (cron)
    as_of = Column(DateTime)                           # 数据截至: when the refresh read the students
    finished_at = Column(DateTime)
    millis = Column(Integer)                           # how long the refresh's transaction took
    groups = Column(Integer)                           # snapshot rows written
    students = Column(Integer)                         # 在校 students counted
    error = Column(String(500))


class StudentTally(Model):
    """A row of the snapshot: the 在校 students of one (school, stage, cohort, class) — with `hukou_other`, the
    户口性质 code when it is neither 1 nor 2 — counted, with every flag and 户口性质 summed (app.statistics.FLAGS).
    No foreign keys: it is derived data, rewritten whole by each refresh."""
    __tablename__ = "student_tally"
    __scope__ = "school"
    # the page reads one refresh's rows of the scope's schools; the refresh deletes the older refreshes' rows
    __table_args__ = (Index("ix_student_tally_refresh_school", "refresh_id", "school_id"),)
    id = Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    refresh_id = Column(Integer, nullable=False)
    school_id = Column(Integer, nullable=False)
    stage = Column(String(4), nullable=False)
    cohort_year = Column(Integer, nullable=False)
    class_id = Column(Integer)
    hukou_other = Column(String(1))
    n = Column(Integer, nullable=False)
    male = Column(Integer, nullable=False)
    female = Column(Integer, nullable=False)
    minority = Column(Integer, nullable=False)
    migrant = Column(Integer, nullable=False)
    rural = Column(Integer, nullable=False)
    left_behind = Column(Integer, nullable=False)
    orphan = Column(Integer, nullable=False)
    martyr = Column(Integer, nullable=False)
    aid = Column(Integer, nullable=False)
    disabled = Column(Integer, nullable=False)
    problem = Column(Integer, nullable=False)
    hukou_1 = Column(Integer, nullable=False)          # 农业户口
    hukou_2 = Column(Integer, nullable=False)          # 非农业户口
    hukou_none = Column(Integer, nullable=False)       # 未填

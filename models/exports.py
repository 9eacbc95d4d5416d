"""后台导出: a large export runs in the background; this row is its progress, its file and its owner."""
from datetime import datetime

from flask_appbuilder.models.sqla import Model
from sqlalchemy import Column, DateTime, ForeignKey, Index, Integer, String

STATES = {"queued": "排队中", "running": "导出中", "done": "已完成", "failed": "失败"}


class ExportJob(Model):
    __tablename__ = "export_job"
    __scope__ = "owner"              # only the account that asked for it sees it (and the superadmin)
    __table_args__ = (Index("ix_export_job_user_created", "user_id", "created_at"),)
    id = Column(Integer, primary_key=True)
    user_id = Column(Integer, ForeignKey("ab_user.id"), nullable=False)
    title = Column(String(100), nullable=False)        # the screen exported, e.g. 学生学籍
    entity = Column(String(50), nullable=False)        # table name, for the audit trail
    fmt = Column(String(4), nullable=False, default="xlsx")
    filters = Column(String(500))                      # the screen's query string, as the user saw it
    state = Column(String(10), nullable=False, default="queued")
    total = Column(Integer, nullable=False, default=0)
    done = Column(Integer, nullable=False, default=0)
    truncated = Column(Integer, nullable=False, default=0)   # rows beyond the export limit, left out
    file_name = Column(String(200))
    error = Column(String(500))
    created_at = Column(DateTime, nullable=False, default=datetime.now)
    heartbeat_at = Column(DateTime)                    # the worker's last sign of life (stale → 中断)
    finished_at = Column(DateTime)

    @property
    def state_label(self) -> str:
        return STATES.get(self.state, self.state)

    @property
    def percent(self) -> int:
        if self.state == "done":
            return 100
        return int(100 * self.done / self.total) if self.total else 0

    def __repr__(self) -> str:
        return f"{self.title}#{self.id}"

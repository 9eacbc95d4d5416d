"""后台任务: one row per check, import, commit or 问题学籍 detection that runs in the background (app/tasks.py).

The row is the task's progress (done/total, the step it is at), its outcome (message) and who asked for it. While
it is queued or running, ``live`` is 1, and UNIQUE(kind, target, live) lets only one live task of a kind exist per
target (a batch, or a detection scope): a second upload of the same file finds the running check instead of
starting another. Ended tasks have ``live`` NULL, and NULLs never collide (SQLite, PostgreSQL and MariaDB alike;
MariaDB has no partial indexes).
"""
from datetime import datetime

from flask_appbuilder.models.sqla import Model
from sqlalchemy import Column, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint

QUEUED, RUNNING, DONE, FAILED = "排队中", "进行中", "完成", "失败"
LIVE_STATES = (QUEUED, RUNNING)


class BackgroundTask(Model):
    __tablename__ = "background_task"
    __scope__ = "owner"              # pages reach a task through its batch's (or scope's) own scope check
    __table_args__ = (UniqueConstraint("kind", "target", "live", name="uq_background_task_live"),
                      Index("ix_background_task_target", "kind", "target", "id"))
    id = Column(Integer, primary_key=True)
    kind = Column(String(20), nullable=False)          # admission_check, admission_commit, roster_check, …
    target = Column(String(40), nullable=False)        # the batch id, or the detection scope ("school:12")
    state = Column(String(10), nullable=False, default=QUEUED)
    live = Column(Integer, nullable=True, default=1)   # 1 while queued or running, NULL once ended
    step = Column(String(40))                          # what it is doing now (读取文件, 校验, 写入…)
    done = Column(Integer, nullable=False, default=0)
    total = Column(Integer, nullable=False, default=0)
    options = Column(String(200))                      # JSON: what the user chose (e.g. 全部正确才提交)
    message = Column(String(500))                      # the outcome, or why it failed
    # who asked for it (the job checks this account's authority again when it runs)
    user_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"), nullable=True)
    queue_id = Column(String(80))                      # its job in app.jobs (a thread's name, an RQ job id)
    created_at = Column(DateTime, nullable=False, default=datetime.now)
    started_at = Column(DateTime)
    heartbeat_at = Column(DateTime)                    # the run's last sign of life
    finished_at = Column(DateTime)

    @property
    def percent(self) -> int:
        if self.state == DONE:
            return 100
        return min(100, int(100 * self.done / self.total)) if self.total else 0

    def __repr__(self) -> str:
        return f"{self.kind}#{self.id}"

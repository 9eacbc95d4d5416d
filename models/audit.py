"""审计日志: append-only. Rows are written by app.audit; no view or API can change or delete them."""
from datetime import datetime

from flask_appbuilder.models.sqla import Model
from sqlalchemy import Column, DateTime, Index, Integer, String, Text


class AuditEvent(Model):
    __tablename__ = "audit_event"
    __scope__ = "school"
    __table_args__ = (Index("ix_audit_school_at", "school_id", "at"),)
    id = Column(Integer, primary_key=True)
    at = Column(DateTime, nullable=False, default=datetime.now, index=True)
    user_id = Column(Integer, nullable=True, index=True)
    username = Column(String(128), nullable=True)
    action = Column(String(20), nullable=False)      # insert update delete login login_failed login_locked logout role_change
    entity = Column(String(50), nullable=True)
    entity_id = Column(String(40), nullable=True)
    field = Column(String(64), nullable=True)
    old_value = Column(Text, nullable=True)
    new_value = Column(Text, nullable=True)
    school_id = Column(Integer, nullable=True)       # whose data it is: scopes the log for bureau readers
    ip = Column(String(45), nullable=True)

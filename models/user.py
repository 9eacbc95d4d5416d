"""Accounts: FAB's ab_user extended with a scope (a school, or a region for bureau staff) and contact data."""
from flask_appbuilder.security.sqla.models import User
from sqlalchemy import Boolean, Column, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import relationship


class XuejiUser(User):
    __tablename__ = "ab_user"
    __scope__ = "user"
    school_id = Column(Integer, ForeignKey("school.id"), nullable=True, index=True)
    region_code = Column(String(6), ForeignKey("region.code"), nullable=True, index=True)
    phone = Column(String(20), nullable=True)
    qq = Column(String(20), nullable=True)
    password_changed_on = Column(DateTime, nullable=True)
    must_change_password = Column(Boolean, nullable=False, default=True)
    locked_until = Column(DateTime, nullable=True)
    # Bumped whenever every session and token of the account must end (注销, password change, disabled, locked,
    # 全部下线); sessions and JWTs carry the value they were issued with and die when it no longer matches.
    session_version = Column(Integer, nullable=False, default=0, server_default="0")
    school = relationship("School", foreign_keys=[school_id], lazy="joined")
    region = relationship("Region", foreign_keys=[region_code], lazy="joined")

    @property
    def full_name(self) -> str:
        # Chinese names are written surname first.
        return f"{self.last_name}{self.first_name}"

    def get_full_name(self) -> str:
        """FAB's user menu and user pages use this: surname first (罗霞, not "霞 罗")."""
        return self.full_name

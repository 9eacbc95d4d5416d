"""跨省交换: the provinces this installation exchanges signed transfer packages with, and their public keys.

One live (not revoked) key per province, held by the database: `live` is 1 while the peer is in use and NULL once
it is revoked, so UNIQUE(province_code, live) allows any number of revoked rows but one live one (NULLs never
collide on SQLite, PostgreSQL and MariaDB alike). Revoking keeps the row: a package signed with an old key is
refused with the reason, and the audit log keeps who registered and who revoked which key.
"""
from datetime import datetime

from flask_appbuilder.models.sqla import Model
from sqlalchemy import Column, DateTime, Integer, String, UniqueConstraint


class ExchangePeer(Model):
    __tablename__ = "exchange_peer"
    __scope__ = "public"             # installation-wide; only the superadmin's role holds its permissions
    __table_args__ = (UniqueConstraint("province_code", "live", name="uq_exchange_peer_live"),)
    id = Column(Integer, primary_key=True)
    province_code = Column(String(6), nullable=False, index=True)     # 420000
    name = Column(String(50), nullable=False)                         # 湖北省
    public_key = Column(String(100), nullable=False)                  # base64 of the raw 32-byte Ed25519 key
    fingerprint = Column(String(100), nullable=False)                 # SHA-256 of the raw key, grouped
    live = Column(Integer, nullable=True)            # 1 while in use, NULL once revoked (no default: NULL stays)
    added_by = Column(String(100), nullable=False)                    # account name (kept if the account goes)
    added_at = Column(DateTime, nullable=False, default=datetime.now)
    revoked_by = Column(String(100), nullable=True)
    revoked_at = Column(DateTime, nullable=True)

    @property
    def state(self) -> str:
        return "已撤销" if self.revoked_at else "有效"

    def __repr__(self) -> str:
        return f"{self.province_code} {self.name} {self.fingerprint[:19]}"

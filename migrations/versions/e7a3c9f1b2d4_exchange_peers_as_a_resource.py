"""exchange peers as a resource (exchange_peer: the other provinces' public keys, one live key per province)

exchange_peer.live is 1 while a peer is in use and NULL once revoked, with UNIQUE(province_code, live): one live
peer per province on SQLite, PostgreSQL and MariaDB alike (NULLs never collide). The installation-wide settings
`exchange.peer.<province code>` that held the keys before become peers (added_by 'migration') and are removed;
a value that is not an Ed25519 public key stays where it was, for the superadmin to see.

Revision ID: e7a3c9f1b2d4
Revises: d5b8c1e9a7f2
Create Date: 2026-11-30 14:00:00.000000

"""
import base64
import binascii
import hashlib
from datetime import datetime

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e7a3c9f1b2d4'
down_revision = 'd5b8c1e9a7f2'
branch_labels = None
depends_on = None

PREFIX = "exchange.peer."


def _raw_key(text):
    try:
        raw = base64.b64decode("".join((text or "").split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 32 else None


def _fingerprint(raw):
    digest = hashlib.sha256(raw).hexdigest().upper()
    return " ".join(digest[i:i + 4] for i in range(0, len(digest), 4))


def _province_name(conn, code):
    name = conn.execute(sa.text("SELECT name FROM region WHERE code = :c"), {"c": code}).scalar()
    if name:
        return name
    try:
        from stdnum import numdb
        for _part, props in numdb.get("cn/loc").info(code):
            if props.get("province"):
                return props["province"]
    except Exception:                    # noqa: BLE001 - the code stands in for an unknown name
        pass
    return code


def upgrade():
    op.create_table('exchange_peer',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('province_code', sa.String(length=6), nullable=False),
    sa.Column('name', sa.String(length=50), nullable=False),
    sa.Column('public_key', sa.String(length=100), nullable=False),
    sa.Column('fingerprint', sa.String(length=100), nullable=False),
    sa.Column('live', sa.Integer(), nullable=True),
    sa.Column('added_by', sa.String(length=100), nullable=False),
    sa.Column('added_at', sa.DateTime(), nullable=False),
    sa.Column('revoked_by', sa.String(length=100), nullable=True),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('province_code', 'live', name='uq_exchange_peer_live')
    )
    with op.batch_alter_table('exchange_peer', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_exchange_peer_province_code'), ['province_code'], unique=False)

    conn = op.get_bind()
    peer = sa.table('exchange_peer', sa.column('province_code'), sa.column('name'), sa.column('public_key'),
                    sa.column('fingerprint'), sa.column('live'), sa.column('added_by'), sa.column('added_at'))
    setting = sa.table('setting', sa.column('id'), sa.column('key'), sa.column('value'), sa.column('region_code'))
    # table constructs, not SQL text: `key` is a reserved word on MariaDB and must be quoted
    rows = conn.execute(sa.select(setting.c.id, setting.c.key, setting.c.value).where(
        setting.c.region_code.is_(None), setting.c.key.like(PREFIX + "%"))).all()
    moved = []
    for setting_id, key, value in rows:
        code, raw = key[len(PREFIX):], _raw_key(value)
        if raw is None or len(code) != 6 or not code.isdigit():
            continue
        conn.execute(peer.insert().values(province_code=code, name=_province_name(conn, code)[:50],
                                          public_key=base64.b64encode(raw).decode(), fingerprint=_fingerprint(raw),
                                          live=1, added_by="migration", added_at=datetime.now()))
        moved.append(setting_id)
    if moved:
        conn.execute(setting.delete().where(setting.c.id.in_(moved)))


def downgrade():
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT province_code, public_key FROM exchange_peer WHERE live = 1")).all()
    setting = sa.table('setting', sa.column('key'), sa.column('region_code'), sa.column('value'))
    for code, key in rows:
        conn.execute(setting.insert().values(key=PREFIX + code, region_code=None, value=key))
    with op.batch_alter_table('exchange_peer', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_exchange_peer_province_code'))

    op.drop_table('exchange_peer')

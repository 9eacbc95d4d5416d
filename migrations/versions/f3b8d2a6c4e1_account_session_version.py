"""ab_user.session_version: a per-account token version; sessions and JWTs issued under an older one are dead

Revision ID: f3b8d2a6c4e1
Revises: e7a3c9f1b2d4
Create Date: 2026-11-30 15:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'f3b8d2a6c4e1'
down_revision = 'e7a3c9f1b2d4'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('ab_user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_version', sa.Integer(), server_default='0', nullable=False))


def downgrade():
    with op.batch_alter_table('ab_user', schema=None) as batch_op:
        batch_op.drop_column('session_version')

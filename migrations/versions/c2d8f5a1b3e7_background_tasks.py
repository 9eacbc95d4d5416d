"""background tasks: large checks, imports and 问题学籍 detection runs on the job queue (background_task)

Revision ID: c2d8f5a1b3e7
Revises: b1c9e4f7a2d6
Create Date: 2026-12-03 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c2d8f5a1b3e7'
down_revision = 'b1c9e4f7a2d6'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('background_task',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('target', sa.String(length=40), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('live', sa.Integer(), nullable=True),
    sa.Column('step', sa.String(length=40), nullable=True),
    sa.Column('done', sa.Integer(), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('options', sa.String(length=200), nullable=True),
    sa.Column('message', sa.String(length=500), nullable=True),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('queue_id', sa.String(length=80), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(), nullable=True),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['ab_user.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    # one live task of a kind per target: live is 1 while queued or running, NULL once ended (NULLs never collide)
    sa.UniqueConstraint('kind', 'target', 'live', name='uq_background_task_live')
    )
    with op.batch_alter_table('background_task', schema=None) as batch_op:
        batch_op.create_index('ix_background_task_target', ['kind', 'target', 'id'], unique=False)


def downgrade():
    with op.batch_alter_table('background_task', schema=None) as batch_op:
        batch_op.drop_index('ix_background_task_target')

    op.drop_table('background_task')

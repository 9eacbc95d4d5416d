"""小升初: roster_batch (a county's 小学毕业生名单 imports) and student.needs_completion (待补录 after 调档)

Revision ID: c4e7a9d2f1b3
Revises: 8a41c0d5e2f7
Create Date: 2026-11-30 09:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c4e7a9d2f1b3'
down_revision = '8a41c0d5e2f7'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('roster_batch',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('county_code', sa.String(length=6), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('stored_name', sa.String(length=80), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('valid_rows', sa.Integer(), nullable=False),
    sa.Column('error_count', sa.Integer(), nullable=False),
    sa.Column('created', sa.Integer(), nullable=False),
    sa.Column('updated', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('uploaded_by_id', sa.Integer(), nullable=True),
    sa.Column('uploaded_at', sa.DateTime(), nullable=False),
    sa.Column('committed_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['county_code'], ['region.code'], ),
    sa.ForeignKeyConstraint(['uploaded_by_id'], ['ab_user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('county_code', 'sha256', name='uq_roster_file')
    )
    with op.batch_alter_table('roster_batch', schema=None) as batch_op:
        batch_op.create_index('ix_roster_batch_county_code', ['county_code'], unique=False)
    with op.batch_alter_table('student', schema=None) as batch_op:
        batch_op.add_column(sa.Column('needs_completion', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.create_index('ix_student_school_completion', ['school_id', 'needs_completion'], unique=False)


def downgrade():
    with op.batch_alter_table('student', schema=None) as batch_op:
        batch_op.drop_index('ix_student_school_completion')
        batch_op.drop_column('needs_completion')
    with op.batch_alter_table('roster_batch', schema=None) as batch_op:
        batch_op.drop_index('ix_roster_batch_county_code')
    op.drop_table('roster_batch')

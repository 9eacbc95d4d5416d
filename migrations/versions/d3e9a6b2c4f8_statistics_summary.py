"""statistics summary: student_tally (the statistics GROUP BY stored per refresh) and statistics_refresh (each
refresh, its 数据截至 time)

Revision ID: d3e9a6b2c4f8
Revises: c2d8f5a1b3e7
Create Date: 2026-12-03 12:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd3e9a6b2c4f8'
down_revision = 'c2d8f5a1b3e7'
branch_labels = None
depends_on = None

COUNTS = ('n', 'male', 'female', 'minority', 'migrant', 'rural', 'left_behind', 'orphan', 'martyr', 'aid',
          'disabled', 'problem', 'hukou_1', 'hukou_2', 'hukou_none')


def upgrade():
    op.create_table('statistics_refresh',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('requested_at', sa.DateTime(), nullable=False),
    sa.Column('requested_by', sa.String(length=64), nullable=True),
    sa.Column('as_of', sa.DateTime(), nullable=True),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('millis', sa.Integer(), nullable=True),
    sa.Column('groups', sa.Integer(), nullable=True),
    sa.Column('students', sa.Integer(), nullable=True),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_statistics_refresh_state_id', 'statistics_refresh', ['state', 'id'], unique=False)
    op.create_table('student_tally',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('refresh_id', sa.Integer(), nullable=False),
    sa.Column('school_id', sa.Integer(), nullable=False),
    sa.Column('stage', sa.String(length=4), nullable=False),
    sa.Column('cohort_year', sa.Integer(), nullable=False),
    sa.Column('class_id', sa.Integer(), nullable=True),
    sa.Column('hukou_other', sa.String(length=1), nullable=True),
    *[sa.Column(name, sa.Integer(), nullable=False) for name in COUNTS],
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_student_tally_refresh_school', 'student_tally', ['refresh_id', 'school_id'], unique=False)


def downgrade():
    op.drop_index('ix_student_tally_refresh_school', table_name='student_tally')
    op.drop_table('student_tally')
    op.drop_index('ix_statistics_refresh_state_id', table_name='statistics_refresh')
    op.drop_table('statistics_refresh')

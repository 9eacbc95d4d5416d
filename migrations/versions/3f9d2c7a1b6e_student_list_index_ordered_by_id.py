"""student list index ends with id: (school_id, status, cohort_year, id) replaces (…, name)

The student lists are ordered by (school_id, id) (views/records.py StudentView), so a page filtered by 学籍状态
and 年级 is one ordered index range per school and its count an index-only scan; nothing orders students by
name, which the old last column served.

Revision ID: 3f9d2c7a1b6e
Revises: 7c1e5a0d2b9f
Create Date: 2026-11-28 23:30:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '3f9d2c7a1b6e'
down_revision = '7c1e5a0d2b9f'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('student', schema=None) as batch_op:
        batch_op.create_index('ix_student_school_status_cohort_id', ['school_id', 'status', 'cohort_year', 'id'],
                              unique=False)
        batch_op.drop_index('ix_student_school_status_cohort_name')


def downgrade():
    with op.batch_alter_table('student', schema=None) as batch_op:
        batch_op.create_index('ix_student_school_status_cohort_name', ['school_id', 'status', 'cohort_year', 'name'],
                              unique=False)
        batch_op.drop_index('ix_student_school_status_cohort_id')

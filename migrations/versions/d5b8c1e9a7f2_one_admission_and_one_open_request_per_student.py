"""one admission per student and year, one open request per student, held by the database

admission.request_id: the review request that moves an admission at 调档 (so arbitration can tell whether a kept
admission still has a request to move it). admission.claim (1 on the admission holding the student for the year, else NULL) with UNIQUE(student_id, year,
claim); wf_request.student_lock (the student's id while an open request of a locking kind holds the 在办业务 lock)
with UNIQUE(student_lock). NULLs never collide on SQLite, PostgreSQL and MariaDB alike. Existing rows: the oldest
active admission of each student and year holds the claim; the oldest open locking request holds the lock.

Revision ID: d5b8c1e9a7f2
Revises: c4e7a9d2f1b3
Create Date: 2026-11-30 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd5b8c1e9a7f2'
down_revision = 'c4e7a9d2f1b3'
branch_labels = None
depends_on = None

# request kinds that lock the student (app.workflow Kind.locks_student) when this revision was written
LOCKING = ("graduate_move", "key_change", "problem_proof", "status_change", "transfer", "transfer_out")
OPEN = ("审核中", "退回修改", "不通过")


def upgrade():
    with op.batch_alter_table('admission', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claim', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('request_id', sa.Integer(), nullable=True))
        batch_op.create_index('ix_admission_request_id', ['request_id'], unique=False)
        batch_op.create_foreign_key('fk_admission_request_id', 'wf_request', ['request_id'], ['id'],
                                    ondelete='SET NULL')
    # lists filed by template name their request on the batch
    op.execute("UPDATE admission SET request_id = (SELECT import_batch.request_id FROM import_batch "
               "WHERE import_batch.id = admission.batch_id) WHERE batch_id IS NOT NULL")
    op.execute("UPDATE admission SET claim = 1 WHERE id IN (SELECT id FROM (SELECT MIN(id) AS id FROM admission "
               "WHERE current = 1 GROUP BY student_id, year) AS holders)")
    with op.batch_alter_table('admission', schema=None) as batch_op:
        batch_op.create_unique_constraint('uq_admission_claim', ['student_id', 'year', 'claim'])
    with op.batch_alter_table('wf_request', schema=None) as batch_op:
        batch_op.add_column(sa.Column('student_lock', sa.Integer(), nullable=True))
    kinds = ", ".join(f"'{k}'" for k in LOCKING)
    states = ", ".join(f"'{s}'" for s in OPEN)
    op.execute(f"UPDATE wf_request SET student_lock = student_id WHERE id IN (SELECT id FROM (SELECT MIN(id) AS id "
               f"FROM wf_request WHERE student_id IS NOT NULL AND kind IN ({kinds}) AND state IN ({states}) "
               f"GROUP BY student_id) AS holders)")
    with op.batch_alter_table('wf_request', schema=None) as batch_op:
        batch_op.create_unique_constraint('uq_request_student_lock', ['student_lock'])


def downgrade():
    with op.batch_alter_table('wf_request', schema=None) as batch_op:
        batch_op.drop_constraint('uq_request_student_lock', type_='unique')
        batch_op.drop_column('student_lock')
    with op.batch_alter_table('admission', schema=None) as batch_op:
        batch_op.drop_constraint('uq_admission_claim', type_='unique')
        batch_op.drop_constraint('fk_admission_request_id', type_='foreignkey')
        batch_op.drop_index('ix_admission_request_id')
        batch_op.drop_column('request_id')
        batch_op.drop_column('claim')

"""student.photo: the stored name of the 学生照片 (a random name under UPLOAD_FOLDER/photos)

Revision ID: a6d4e2c8b1f5
Revises: f3b8d2a6c4e1
Create Date: 2026-12-01 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a6d4e2c8b1f5'
down_revision = 'f3b8d2a6c4e1'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('student', schema=None) as batch_op:
        batch_op.add_column(sa.Column('photo', sa.String(length=40), nullable=True))


def downgrade():
    with op.batch_alter_table('student', schema=None) as batch_op:
        batch_op.drop_column('photo')

"""stored files: files every app server sees (stored_file + stored_file_chunk, for XUEJI_FILE_STORE=database)

Revision ID: b1c9e4f7a2d6
Revises: a6d4e2c8b1f5
Create Date: 2026-12-03 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql


# revision identifiers, used by Alembic.
revision = 'b1c9e4f7a2d6'
down_revision = 'a6d4e2c8b1f5'
branch_labels = None
depends_on = None

# BLOB on MariaDB holds 64 KB only; a chunk is about 1 MB (bytea on PostgreSQL, BLOB on SQLite have no such limit)
CHUNK = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql")


def upgrade():
    op.create_table('stored_file',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('area', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('chunks', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('area', 'name', name='uq_stored_file_area_name')
    )
    op.create_table('stored_file_chunk',
    sa.Column('file_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('data', CHUNK, nullable=False),
    sa.ForeignKeyConstraint(['file_id'], ['stored_file.id'], ),
    sa.PrimaryKeyConstraint('file_id', 'seq')
    )


def downgrade():
    op.drop_table('stored_file_chunk')
    op.drop_table('stored_file')

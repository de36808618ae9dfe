"""course trash: deleted_at on chapters and videos

A trashed chapter or video keeps its row (and its stored file) with deleted_at
set until it is restored or purged (services/trash.py). Added columns only, so
SQLite alters the tables in place (no table copy under its foreign keys).

Revision ID: 0004_trash
Revises: 0004
Create Date: 2026-11-29 00:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0004_trash'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ('chapters', 'videos'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True))
            batch_op.create_index(batch_op.f(f'ix_{table}_deleted_at'), ['deleted_at'], unique=False)


def downgrade() -> None:
    # Trashed rows would come back as live ones: purge the trash before downgrading.
    # A plain DROP COLUMN (SQLite 3.35+ has it), not a batch table copy.
    for table in ('videos', 'chapters'):
        op.drop_index(f'ix_{table}_deleted_at', table_name=table)
        op.drop_column(table, 'deleted_at')

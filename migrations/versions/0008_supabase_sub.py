"""users.supabase_sub: the Supabase user a local account belongs to

Revision ID: 0006_supabase_sub
Revises: 0005_video_processing
Create Date: 2026-11-29 03:00:00
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0006_supabase_sub'
down_revision = '0005_video_processing'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('supabase_sub', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True))
        batch_op.create_index(batch_op.f('ix_users_supabase_sub'), ['supabase_sub'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_users_supabase_sub'))
        batch_op.drop_column('supabase_sub')

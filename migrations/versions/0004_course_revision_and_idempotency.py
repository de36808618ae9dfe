"""course revision and pulse, idempotent API requests

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 00:10:00
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('courses') as batch:
        batch.add_column(sa.Column('revision', sa.Integer(), server_default='0', nullable=False))
        batch.add_column(sa.Column('pulse', sa.Integer(), server_default='0', nullable=False))
    op.create_table('idempotent_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('fingerprint', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('body', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('user_id', 'key', name='uq_idempotent_requests_user_key'),
    )
    op.create_index(op.f('ix_idempotent_requests_user_id'), 'idempotent_requests', ['user_id'], unique=False)
    op.create_index(op.f('ix_idempotent_requests_created_at'), 'idempotent_requests', ['created_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_idempotent_requests_created_at'), table_name='idempotent_requests')
    op.drop_index(op.f('ix_idempotent_requests_user_id'), table_name='idempotent_requests')
    op.drop_table('idempotent_requests')
    with op.batch_alter_table('courses') as batch:
        batch.drop_column('pulse')
        batch.drop_column('revision')

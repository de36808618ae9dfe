"""video processing: stage, failure, lease and what probing found

Revision ID: 0005_video_processing
Revises: 0004_drop_video_url
Create Date: 2026-11-28 23:58:00
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel



revision = '0005_video_processing'
down_revision = '0004_drop_video_url'
branch_labels = None
depends_on = None

TEXT_COLUMNS = (
    ('stage', 20), ('failure_code', 40), ('lease_owner', 64), ('video_codec', 40), ('audio_codec', 40),
    ('thumbnail_small_key', 600), ('thumbnail_large_key', 600),
)


def upgrade() -> None:
    with op.batch_alter_table('videos', schema=None) as batch_op:
        for name, length in TEXT_COLUMNS:
            batch_op.add_column(sa.Column(name, sqlmodel.sql.sqltypes.AutoString(length=length), nullable=True))
        batch_op.add_column(sa.Column('retryable', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('width', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('height', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('bitrate', sa.BigInteger(), nullable=True))
        batch_op.create_index(batch_op.f('ix_videos_lease_expires_at'), ['lease_expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('videos', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_videos_lease_expires_at'))
        for name in ('bitrate', 'height', 'width', 'attempts', 'heartbeat_at', 'lease_expires_at', 'retryable'):
            batch_op.drop_column(name)
        for name, _ in reversed(TEXT_COLUMNS):
            batch_op.drop_column(name)

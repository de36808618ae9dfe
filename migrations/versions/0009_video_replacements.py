"""video replacements (a new file for a lesson, swapped in once processed) and file fingerprints

Revision ID: 0007_video_replacements
Revises: 0006_supabase_sub
Create Date: 2026-11-29 03:00:00
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0007_video_replacements'
down_revision = '0006_supabase_sub'
branch_labels = None
depends_on = None

_TEXT = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        'video_replacements',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('video_id', sa.Uuid(), nullable=False),
        sa.Column('course_id', sa.Uuid(), nullable=False),
        sa.Column('filename', _TEXT(length=1024), nullable=False),
        sa.Column('backblaze_file_id', _TEXT(length=200), nullable=True),
        sa.Column('storage_key', _TEXT(length=512), nullable=False),
        sa.Column('size_bytes', sa.BigInteger(), nullable=True),
        sa.Column('sha1', _TEXT(length=40), nullable=True),
        sa.Column('fingerprint', _TEXT(length=200), nullable=True),
        sa.Column('content_type', _TEXT(length=200), nullable=False),
        sa.Column('status', _TEXT(length=20), nullable=False),
        sa.Column('error', _TEXT(length=1000), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('stage', _TEXT(length=20), nullable=True),
        sa.Column('failure_code', _TEXT(length=40), nullable=True),
        sa.Column('retryable', sa.Boolean(), nullable=True),
        sa.Column('lease_owner', _TEXT(length=64), nullable=True),
        sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('duration_seconds', sa.Float(), nullable=True),
        sa.Column('width', sa.Integer(), nullable=True),
        sa.Column('height', sa.Integer(), nullable=True),
        sa.Column('video_codec', _TEXT(length=40), nullable=True),
        sa.Column('audio_codec', _TEXT(length=40), nullable=True),
        sa.Column('bitrate', sa.BigInteger(), nullable=True),
        sa.Column('thumbnail_small_key', _TEXT(length=600), nullable=True),
        sa.Column('thumbnail_large_key', _TEXT(length=600), nullable=True),
        sa.ForeignKeyConstraint(['course_id'], ['courses.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['video_id'], ['videos.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('storage_key'),
        sa.UniqueConstraint('video_id'),
    )
    with op.batch_alter_table('video_replacements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_video_replacements_course_id'), ['course_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_video_replacements_lease_expires_at'), ['lease_expires_at'], unique=False)

    with op.batch_alter_table('videos', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fingerprint', _TEXT(length=200), nullable=True))
        batch_op.create_index(batch_op.f('ix_videos_fingerprint'), ['fingerprint'], unique=False)

    with op.batch_alter_table('upload_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('replaces_video_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('replacement_id', sa.Uuid(), nullable=True))
        batch_op.create_index(batch_op.f('ix_upload_sessions_replaces_video_id'), ['replaces_video_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_upload_sessions_replacement_id'), ['replacement_id'], unique=False)
        batch_op.create_foreign_key('fk_upload_sessions_replaces_video_id_videos', 'videos',
                                    ['replaces_video_id'], ['id'], ondelete='SET NULL')
        batch_op.create_foreign_key('fk_upload_sessions_replacement_id_video_replacements', 'video_replacements',
                                    ['replacement_id'], ['id'], ondelete='SET NULL')


def downgrade() -> None:
    with op.batch_alter_table('upload_sessions', schema=None) as batch_op:
        batch_op.drop_constraint('fk_upload_sessions_replacement_id_video_replacements', type_='foreignkey')
        batch_op.drop_constraint('fk_upload_sessions_replaces_video_id_videos', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_upload_sessions_replacement_id'))
        batch_op.drop_index(batch_op.f('ix_upload_sessions_replaces_video_id'))
        batch_op.drop_column('replacement_id')
        batch_op.drop_column('replaces_video_id')
    with op.batch_alter_table('videos', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_videos_fingerprint'))
        batch_op.drop_column('fingerprint')
    with op.batch_alter_table('video_replacements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_video_replacements_lease_expires_at'))
        batch_op.drop_index(batch_op.f('ix_video_replacements_course_id'))
    op.drop_table('video_replacements')

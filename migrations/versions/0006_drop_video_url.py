"""drop videos.video_url: the play URL follows from the id, the API derives it

Revision ID: 0004_drop_video_url
Revises: 0004_trash
Create Date: 2026-11-29 00:10:00
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0004_drop_video_url'
down_revision = '0004_trash'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('videos', schema=None) as batch_op:
        batch_op.drop_column('video_url')


def downgrade() -> None:
    with op.batch_alter_table('videos', schema=None) as batch_op:
        batch_op.add_column(sa.Column('video_url', sqlmodel.sql.sqltypes.AutoString(length=2048), nullable=False,
                                      server_default=''))
    # Refill what the column held: the play URL of every ready video.
    bind = op.get_bind()
    videos = sa.table('videos', sa.column('id', sa.Uuid()), sa.column('status', sa.String()),
                      sa.column('video_url', sa.String()))
    for (video_id,) in bind.execute(sa.select(videos.c.id).where(videos.c.status == 'ready')).all():
        bind.execute(videos.update().where(videos.c.id == video_id).values(video_url=f'/api/videos/{video_id}/stream'))

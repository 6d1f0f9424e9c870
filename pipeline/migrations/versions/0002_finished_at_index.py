"""Index render_jobs.finished_at: retention, statistics and the webhook sweep look jobs up by when they ended.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_render_jobs_finished_at", "render_jobs", ["finished_at"])


def downgrade() -> None:
    op.drop_index("ix_render_jobs_finished_at", table_name="render_jobs")

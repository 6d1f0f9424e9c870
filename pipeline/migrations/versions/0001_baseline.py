"""Baseline: the job store as ``create_all`` made it before migrations existed.

A database made that way (tables, no ``alembic_version``) is brought under
migrations by this revision: tables it lacks are created, tables it has are
checked for the baseline's columns and kept as they are. A fresh database gets
all three tables.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def _tables() -> list[sa.Table]:
    meta = sa.MetaData()
    jobs = sa.Table(
        "render_jobs",
        meta,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("mix_request_id", sa.String(128), nullable=True),
        sa.Column("trace_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("progress", sa.Integer, nullable=False),
        sa.Column("error_log", sa.Text, nullable=False),
        sa.Column("request", sa.JSON, nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("output_path", sa.Text, nullable=True),
        sa.Column("report_path", sa.Text, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("finished_at", TZ, nullable=True),
        sa.Index("ix_render_jobs_mix_request_id", "mix_request_id"),
        sa.Index("ix_render_jobs_status", "status"),
        sa.Index("ix_render_jobs_created_at", "created_at"),
    )
    attempts = sa.Table(
        "render_job_attempts",
        meta,
        sa.Column("job_id", sa.String(64), primary_key=True),
        sa.Column("attempt", sa.Integer, primary_key=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("finished_at", TZ, nullable=True),
        sa.Column("report_path", sa.Text, nullable=True),
        sa.Column("output_path", sa.Text, nullable=True),
        sa.Column("clip_stats", sa.JSON, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    deliveries = sa.Table(
        "webhook_deliveries",
        meta,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("tries", sa.Integer, nullable=False),
        sa.Column("next_at", TZ, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("delivered_at", TZ, nullable=True),
        sa.UniqueConstraint("job_id", "attempt", "status", name="uq_delivery_state"),
        sa.Index("ix_webhook_deliveries_job_id", "job_id"),
        sa.Index("ix_webhook_deliveries_state", "state"),
        sa.Index("ix_webhook_deliveries_next_at", "next_at"),
    )
    return [jobs, attempts, deliveries]


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    for table in _tables():
        if not inspector.has_table(table.name):
            table.create(bind)  # with its indexes and constraints
            continue
        have = {c["name"] for c in inspector.get_columns(table.name)}
        missing = sorted(set(table.c.keys()) - have)
        if missing:
            raise RuntimeError(
                f"table {table.name} lacks column(s) {', '.join(missing)}: this database predates the "
                "baseline schema of the job store; move its records to a new database"
            )


def downgrade() -> None:
    for table in reversed(_tables()):
        op.drop_table(table.name)

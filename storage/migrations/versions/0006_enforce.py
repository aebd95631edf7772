"""enforcers and the runaway breaker (issue 14): enforce_pushes, enforcer_health, breaker_trips

Revision ID: 0006_enforce
Revises: 0005_sources
Create Date: 2026-11-27 18:00:00
"""

import sqlalchemy as sa
from alembic import op

import storage.types

revision = "0006_enforce"
down_revision = "0005_sources"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "enforce_pushes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("enforcer", sa.String(length=20), nullable=False),
        sa.Column("subject", sa.String(length=340), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("pushed_version", sa.Integer(), nullable=False),
        sa.Column("created_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("locked_until", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("pushed_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enforce_pushes")),
        sa.UniqueConstraint("enforcer", "subject", name=op.f("uq_enforce_pushes_enforcer_subject")),
    )
    op.create_index("ix_enforce_pushes_due", "enforce_pushes", ["next_attempt_at"])
    op.create_table(
        "enforcer_health",
        sa.Column("enforcer", sa.String(length=20), nullable=False),
        sa.Column("last_success_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_failure_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("failing_since", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("told_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("enforcer", name=op.f("pk_enforcer_health")),
    )
    op.create_table(
        "breaker_trips",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subject", sa.String(length=340), nullable=False),
        sa.Column("episode", sa.Integer(), nullable=False),
        sa.Column("user_key", sa.String(length=320), nullable=True),
        sa.Column("key_id", sa.String(length=320), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("tripped_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("window_minutes", sa.Integer(), nullable=False),
        sa.Column("window_usd", storage.types.Money(precision=38, scale=12), nullable=False),
        sa.Column("usual_usd", storage.types.Money(precision=38, scale=12), nullable=False),
        sa.Column("quiet_until", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("auto_resume_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=32), nullable=True),
        sa.Column("decided_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("messages", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_breaker_trips")),
        sa.UniqueConstraint("subject", "episode", name=op.f("uq_breaker_trips_subject_episode")),
    )
    op.create_index("ix_breaker_trips_user_key_status", "breaker_trips", ["user_key", "status"])
    op.create_index("ix_breaker_trips_tripped_at", "breaker_trips", ["tripped_at"])


def downgrade() -> None:
    op.drop_table("breaker_trips")
    op.drop_table("enforcer_health")
    op.drop_table("enforce_pushes")

"""provider sources (SPEC 10): pull state, buckets, the bill side, users, Claude Code days (issue 13)

Revision ID: 0005_sources
Revises: 0004_teams
Create Date: 2026-11-27 18:00:00

New tables only: nothing existing is rewritten.
"""

import sqlalchemy as sa
from alembic import op

import storage.types

revision = "0005_sources"
down_revision = "0004_teams"
branch_labels = None
depends_on = None


def _money(name: str) -> sa.Column:
    return sa.Column(name, storage.types.Money(precision=38, scale=12), server_default="0", nullable=False)


def _count(name: str) -> sa.Column:
    return sa.Column(name, sa.BigInteger(), server_default="0", nullable=False)


def upgrade() -> None:
    when = storage.types.UTCDateTime
    op.create_table(
        "source_state",
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("endpoint", sa.String(40), nullable=False),
        sa.Column("cursor", when(), nullable=True),
        sa.Column("last_poll_at", when(), nullable=True),
        sa.Column("last_success_at", when(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("errors", sa.Integer(), server_default="0", nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("lease_owner", sa.String(100), nullable=True),
        sa.Column("lease_until", when(), nullable=True),
        sa.Column("key_alerted_at", when(), nullable=True),
        sa.PrimaryKeyConstraint("source", "endpoint", name=op.f("pk_source_state")),
    )
    op.create_table(
        "provider_buckets",
        sa.Column("bucket_id", sa.String(200), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("project", sa.String(200), nullable=True),
        sa.Column("model", sa.String(200), nullable=False),
        _count("input_tokens"),
        _count("cached_input_tokens"),
        _count("output_tokens"),
        _money("cost_usd"),
        sa.Column("unpriced", sa.Boolean(), nullable=False),
        sa.Column("counted", sa.Boolean(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=True),
        sa.Column("updated_at", when(), nullable=False),
        sa.PrimaryKeyConstraint("bucket_id", name=op.f("pk_provider_buckets")),
    )
    op.create_index("ix_provider_buckets_source_day", "provider_buckets", ["source", "day"])
    op.create_table(
        "provider_costs",
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("line_item", sa.String(200), nullable=False),
        _money("amount_usd"),
        sa.Column("updated_at", when(), nullable=False),
        sa.PrimaryKeyConstraint("source", "day", "project", "line_item", name=op.f("pk_provider_costs")),
    )
    op.create_table(
        "provider_users",
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("name", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("source", "user_id", name=op.f("pk_provider_users")),
    )
    op.create_table(
        "claude_code_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("actor", sa.String(320), nullable=False),
        sa.Column("user_key", sa.String(320), nullable=False),
        _count("sessions"),
        _count("lines_added"),
        _count("lines_removed"),
        _count("commits"),
        _count("pull_requests"),
        _count("tokens"),
        _money("estimated_cost_usd"),
        sa.Column("models", sa.JSON(), nullable=True),
        sa.Column("updated_at", when(), nullable=False),
        sa.PrimaryKeyConstraint("day", "actor", name=op.f("pk_claude_code_days")),
    )
    op.create_index("ix_claude_code_days_user_key_day", "claude_code_days", ["user_key", "day"])


def downgrade() -> None:
    op.drop_index("ix_claude_code_days_user_key_day", table_name="claude_code_days")
    op.drop_table("claude_code_days")
    op.drop_table("provider_users")
    op.drop_table("provider_costs")
    op.drop_index("ix_provider_buckets_source_day", table_name="provider_buckets")
    op.drop_table("provider_buckets")
    op.drop_table("source_state")

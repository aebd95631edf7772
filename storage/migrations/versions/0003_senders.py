"""usage_events.cache_hit: calls a gateway served from its cache (issue 9)

Revision ID: 0003_senders
Revises: 0002_ledger
Create Date: 2026-11-27 15:00:00

A plain ADD COLUMN on both databases, never a batch table copy: on SQLite a copy would
rebuild the 0002_ledger table from reflection and lose `event_id`'s inline UNIQUE (so resends
would count twice); on PostgreSQL the column reaches every monthly partition.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_senders"
down_revision = "0002_ledger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite's ADD COLUMN takes a constant default only (no expression such as false())
    default = "0" if op.get_bind().dialect.name == "sqlite" else sa.false()
    op.add_column("usage_events", sa.Column("cache_hit", sa.Boolean(), server_default=default, nullable=False))


def downgrade() -> None:
    op.drop_column("usage_events", "cache_hit")  # SQLite 3.35+: ALTER TABLE DROP COLUMN, no table copy

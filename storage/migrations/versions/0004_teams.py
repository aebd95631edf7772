"""teams: the team each event is charged to, the chargeback rollup, memberships (issue 12)

Revision ID: 0004_teams
Revises: 0003_senders
Create Date: 2026-11-27 18:00:00

- `usage_events.charge_team`: the team an event was charged to when it was stored ("" none),
  a plain ADD COLUMN (see 0003_senders: never a batch copy of the ledger).
- `usage_team_monthly`: (month, team, person, model, project) sums, folded with the person
  rollups; it serves the team card and the chargeback export. `usage_team_daily`: (day, team)
  sums for digests.
- `team_fold_queue` (PostgreSQL; created on both): its deltas, like `usage_fold_queue`.
- `team_memberships`: who was in which team, from when until when, and why (config | usergroup).
- `team_sync_state`: the last user group sync of each team, and its error.
"""

import sqlalchemy as sa
from alembic import op

import storage.types

revision = "0004_teams"
down_revision = "0003_senders"
branch_labels = None
depends_on = None

TOKENS = ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens")


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.add_column("usage_events", sa.Column("charge_team", sa.String(length=200), server_default="",
                                            nullable=False))
    op.create_table(
        "usage_team_monthly",
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("team", sa.String(length=200), nullable=False),
        sa.Column("user_key", sa.String(length=320), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("project", sa.String(length=200), nullable=False),
        *(sa.Column(n, storage.types.WideCount(), server_default="0", nullable=False) for n in TOKENS),
        sa.Column("cost_usd", storage.types.Money(), server_default="0", nullable=False),
        sa.Column("events", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("unpriced_events", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("month", "team", "user_key", "model", "project",
                                name=op.f("pk_usage_team_monthly")),
    )
    op.create_table(
        "usage_team_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("team", sa.String(length=200), nullable=False),
        *(sa.Column(n, storage.types.WideCount(), server_default="0", nullable=False) for n in TOKENS),
        sa.Column("cost_usd", storage.types.Money(), server_default="0", nullable=False),
        sa.Column("events", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("unpriced_events", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("day", "team", name=op.f("pk_usage_team_daily")),
    )
    array = (lambda item: sa.JSON()) if sqlite else (lambda item: sa.ARRAY(item))
    op.create_table(
        "team_fold_queue",
        sa.Column("id", sa.Integer() if sqlite else sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("teams", array(sa.Text()), nullable=False),
        sa.Column("user_keys", array(sa.Text()), nullable=False),
        sa.Column("days", array(sa.Date()), nullable=False),
        sa.Column("models", array(sa.Text()), nullable=False),
        sa.Column("projects", array(sa.Text()), nullable=False),
        *(sa.Column(n, array(sa.Numeric()), nullable=False) for n in (*TOKENS, "cost_usd")),
        sa.Column("events", array(sa.BigInteger()), nullable=False),
        sa.Column("unpriced_events", array(sa.BigInteger()), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_team_fold_queue")),
    )
    _backfill(sqlite)
    op.create_table(
        "team_memberships",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("team", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("since", storage.types.UTCDateTime(), nullable=False),
        sa.Column("until", storage.types.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_team_memberships")),
    )
    op.create_index("uq_team_memberships_current", "team_memberships", ["team", "user_id", "source"], unique=True,
                    postgresql_where=sa.text("until IS NULL"), sqlite_where=sa.text("until IS NULL"))
    op.create_table(
        "team_sync_state",
        sa.Column("team", sa.String(length=200), nullable=False),
        sa.Column("usergroup", sa.String(length=32), nullable=False),
        sa.Column("synced_at", storage.types.UTCDateTime(), nullable=True),
        sa.Column("members", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_reported", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("team", name=op.f("pk_team_sync_state")),
    )


MEASURES = (*TOKENS, "cost_usd", "events", "unpriced_events")
GROUPS = {
    "usage_team_monthly": ("month, team, user_key, model, project", "{month}, charge_team, user_key, model, "
                           "COALESCE(project, '')"),
    "usage_team_daily": ("day, team", "day, charge_team"),
}


def _backfill(sqlite: bool) -> None:
    """Events stored before teams existed are in no team (charge_team ""): their sums start the rollups."""
    conn = op.get_bind()
    for table, (keys, group) in GROUPS.items():
        if not sqlite:
            group = group.format(month="to_char(day, 'YYYY-MM')")
            conn.exec_driver_sql(
                f"INSERT INTO {table} ({keys}, {', '.join(MEASURES)}) SELECT {group}, SUM(input_tokens), "
                "SUM(cached_input_tokens), SUM(output_tokens), SUM(reasoning_tokens), SUM(cost_usd), COUNT(*), "
                f"COUNT(*) FILTER (WHERE unpriced) FROM usage_events GROUP BY {group}")
            continue
        # SQLite: no wide_sum on this connection; exact sums in Python (money in whole dollars and the rest)
        group = group.format(month="substr(day, 1, 7)")
        unit = 10**storage.types.MONEY_SCALE
        rows = conn.exec_driver_sql(
            f"SELECT {group}, SUM(input_tokens), SUM(cached_input_tokens), SUM(output_tokens), SUM(reasoning_tokens), "
            f"SUM(CAST(cost_usd AS INTEGER) / {unit}), SUM(CAST(cost_usd AS INTEGER) % {unit}), COUNT(*), "
            f"SUM(unpriced) FROM usage_events GROUP BY {group}").fetchall()
        n = len(keys.split(","))
        out = []
        for r in rows:
            cost = int(r[n + 4]) * unit + int(r[n + 5])
            out.append((*r[:n], *(storage.types.wide_encode(int(v or 0)) for v in r[n:n + 4]),
                        storage.types.wide_encode(cost), int(r[n + 6]), int(r[n + 7] or 0)))
        if out:
            conn.exec_driver_sql(f"INSERT INTO {table} ({keys}, {', '.join(MEASURES)}) VALUES "
                                 f"({', '.join('?' * (n + 7))})", out)


def downgrade() -> None:
    op.drop_table("team_sync_state")
    op.drop_index("uq_team_memberships_current", table_name="team_memberships")
    op.drop_table("team_memberships")
    op.drop_table("team_fold_queue")
    op.drop_table("usage_team_daily")
    op.drop_table("usage_team_monthly")
    op.drop_column("usage_events", "charge_team")

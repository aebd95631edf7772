"""ledger at scale: deferred rollups, wide exact sums, monthly partitions (PostgreSQL)

Revision ID: 0002_ledger
Revises: 0001
Create Date: 2026-11-27

SQLite:
- `usage_events` gets `seq INTEGER PRIMARY KEY` (the order the rollup fold follows) and keeps
  `event_id` UNIQUE; the (user_key, day) index goes (no read needs it any more).
- money and rollup token columns become "wide" (no type affinity: an INTEGER while below 2^62,
  exact digits beyond; storage/types.py), so sums never overflow into floats.
- `rollup_fold_state` starts at the last event: every existing event is already in the rollups.
PostgreSQL:
- `usage_events` becomes a table partitioned by month of `day` (a real data migration: rows
  are copied into the new partitions), ids move to `usage_event_ids` (uniqueness across
  partitions), and rollup token sums become NUMERIC(38, 0).
- `usage_fold_queue` holds rollup deltas until a fold adds them.
"""

import re
from datetime import date, timedelta

import sqlalchemy as sa
from alembic import op

revision = "0002_ledger"
down_revision = "0001"
branch_labels = None
depends_on = None

WIDE_LIMIT = 4611686018427387904  # 2^62
TOKENS = ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens")
ROLLUPS = ("usage_daily_model", "usage_daily", "usage_monthly")
MONEY = {
    "usage_daily_model": (*TOKENS, "cost_usd"),
    "usage_daily": (*TOKENS, "cost_usd"),
    "usage_monthly": (*TOKENS, "cost_usd"),
    "budgets": ("monthly_usd",),
    "budget_raises": ("amount_usd",),
    "budget_requests": ("amount_usd", "granted_usd", "limit_before_usd"),
}
EVENT_COLUMNS = (
    "event_id", "occurred_at", "day", "received_at", "source", "subject", "user_key", "model", "provider", "team",
    "project", "input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens", "cost_usd",
    "price_source", "unpriced", "metadata",
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _upgrade_sqlite()
    else:
        _upgrade_postgresql()


def downgrade() -> None:
    raise NotImplementedError(
        "0002_ledger cannot be undone in place (partitioned ledger, wide money columns): restore the "
        "database from a backup taken before the upgrade")


# -- SQLite -----------------------------------------------------------------------------------------
def _wide(column: str) -> str:
    return (f"CASE WHEN typeof({column}) = 'integer' AND {column} >= {WIDE_LIMIT} "
            f"THEN printf('%040d', {column}) ELSE {column} END")


def _upgrade_sqlite() -> None:
    conn = op.get_bind()
    for table, columns in MONEY.items():
        _retype_sqlite(conn, table, columns)

    op.drop_index("ix_usage_events_user_key_day", table_name="usage_events")
    op.drop_index("ix_usage_events_subject", table_name="usage_events")
    op.drop_index("ix_usage_events_unpriced", table_name="usage_events")
    op.rename_table("usage_events", "usage_events_0001")
    conn.exec_driver_sql(
        "CREATE TABLE usage_events ("
        "seq INTEGER NOT NULL PRIMARY KEY, "
        "event_id VARCHAR(200) NOT NULL CONSTRAINT uq_usage_events_event_id UNIQUE, "
        "occurred_at DATETIME NOT NULL, day DATE NOT NULL, received_at DATETIME NOT NULL, "
        "source VARCHAR(20) NOT NULL, subject VARCHAR(320) NOT NULL, user_key VARCHAR(320) NOT NULL, "
        "model VARCHAR(200) NOT NULL, provider VARCHAR(100), team VARCHAR(200), project VARCHAR(200), "
        "input_tokens BIGINT DEFAULT '0' NOT NULL, cached_input_tokens BIGINT DEFAULT '0' NOT NULL, "
        "output_tokens BIGINT DEFAULT '0' NOT NULL, reasoning_tokens BIGINT DEFAULT '0' NOT NULL, "
        "cost_usd BLOB DEFAULT 0 NOT NULL, price_source VARCHAR(60) NOT NULL, unpriced BOOLEAN NOT NULL, "
        "metadata JSON)"
    )
    selected = ", ".join(_wide(c) if c == "cost_usd" else c for c in EVENT_COLUMNS)
    conn.exec_driver_sql(
        f"INSERT INTO usage_events (seq, {', '.join(EVENT_COLUMNS)}) "
        f"SELECT rowid, {selected} FROM usage_events_0001 ORDER BY rowid"
    )
    op.drop_table("usage_events_0001")
    _event_indexes()
    _new_tables(sqlite=True)
    conn.exec_driver_sql(
        "INSERT INTO rollup_fold_state (id, folded_seq) SELECT 1, COALESCE(MAX(seq), 0) FROM usage_events")


def _retype_sqlite(conn, table: str, columns: tuple[str, ...]) -> None:
    """The SQLite way to change column types: a new table, the rows copied, the old one dropped."""
    create = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).scalar()
    indexes = [r[0] for r in conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", (table,))]
    for column in columns:
        create, found = re.subn(rf"(\b{column}\s+)[A-Z]+(\(\d+(,\s*\d+)?\))?( DEFAULT '0')?", lambda m: m.group(1) + "BLOB" + (" DEFAULT 0" if m.group(4) else ""),
                                create, count=1)
        assert found == 1, f"{table}.{column} not found in {create}"
    create = re.sub(rf"^CREATE TABLE\s+\"?{table}\"?", f"CREATE TABLE _new_{table}", create)
    names = [r[1] for r in conn.exec_driver_sql(f"PRAGMA table_info({table})")]
    conn.exec_driver_sql(create)
    selected = ", ".join(_wide(n) if n in columns else n for n in names)
    conn.exec_driver_sql(f"INSERT INTO _new_{table} ({', '.join(names)}) SELECT {selected} FROM {table}")
    conn.exec_driver_sql(f"DROP TABLE {table}")
    conn.exec_driver_sql(f"ALTER TABLE _new_{table} RENAME TO {table}")
    for sql in indexes:
        conn.exec_driver_sql(sql)


def _event_indexes() -> None:
    op.create_index("ix_usage_events_subject", "usage_events", ["subject"])
    op.create_index("ix_usage_events_unpriced", "usage_events", ["model"],
                    postgresql_where=sa.text("unpriced"), sqlite_where=sa.text("unpriced"))


def _new_tables(*, sqlite: bool) -> None:
    array = (lambda item: sa.JSON()) if sqlite else (lambda item: sa.ARRAY(item))
    op.create_table(
        "usage_event_ids",
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_usage_event_ids")),
    )
    op.create_table(
        "usage_fold_queue",
        sa.Column("id", sa.Integer() if sqlite else sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("user_keys", array(sa.Text()), nullable=False),
        sa.Column("days", array(sa.Date()), nullable=False),
        sa.Column("models", array(sa.Text()), nullable=False),
        *(sa.Column(name, array(sa.Numeric()), nullable=False) for name in (*TOKENS, "cost_usd")),
        sa.Column("events", array(sa.BigInteger()), nullable=False),
        sa.Column("unpriced_events", array(sa.BigInteger()), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_fold_queue")),
    )
    op.create_table(
        "rollup_fold_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("folded_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollup_fold_state")),
    )


# -- PostgreSQL -------------------------------------------------------------------------------------
def _months(first: date, last: date) -> list[date]:
    out, month = [], first.replace(day=1)
    while month <= last:
        out.append(month)
        month = (month + timedelta(days=32)).replace(day=1)
    return out


def _upgrade_postgresql() -> None:
    conn = op.get_bind()
    for table in ROLLUPS:
        for column in TOKENS:
            conn.exec_driver_sql(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE NUMERIC(38, 0)")

    for index in ("ix_usage_events_user_key_day", "ix_usage_events_subject", "ix_usage_events_unpriced"):
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {index}")
    conn.exec_driver_sql("ALTER TABLE usage_events RENAME TO usage_events_0001")
    conn.exec_driver_sql("ALTER TABLE usage_events_0001 RENAME CONSTRAINT pk_usage_events TO pk_usage_events_0001")
    conn.exec_driver_sql(
        "CREATE TABLE usage_events ("
        "event_id VARCHAR(200) NOT NULL, occurred_at TIMESTAMP WITH TIME ZONE NOT NULL, day DATE NOT NULL, "
        "received_at TIMESTAMP WITH TIME ZONE NOT NULL, source VARCHAR(20) NOT NULL, subject VARCHAR(320) NOT NULL, "
        "user_key VARCHAR(320) NOT NULL, model VARCHAR(200) NOT NULL, provider VARCHAR(100), team VARCHAR(200), "
        "project VARCHAR(200), input_tokens BIGINT DEFAULT '0' NOT NULL, "
        "cached_input_tokens BIGINT DEFAULT '0' NOT NULL, output_tokens BIGINT DEFAULT '0' NOT NULL, "
        "reasoning_tokens BIGINT DEFAULT '0' NOT NULL, cost_usd NUMERIC(38, 12) DEFAULT '0' NOT NULL, "
        "price_source VARCHAR(60) NOT NULL, unpriced BOOLEAN NOT NULL, metadata JSON"
        ") PARTITION BY RANGE (day)"
    )
    today = conn.exec_driver_sql("SELECT CURRENT_DATE").scalar()
    # the months that hold data, plus the current one and the next two
    existing = {r[0] for r in conn.exec_driver_sql(
        "SELECT DISTINCT date_trunc('month', day)::date FROM usage_events_0001")}
    existing |= set(_months(today, today + timedelta(days=62)))
    for month in sorted(existing):
        upto = (month + timedelta(days=32)).replace(day=1)
        conn.exec_driver_sql(
            f"CREATE TABLE usage_events_{month.year:04d}_{month.month:02d} PARTITION OF usage_events "
            f"FOR VALUES FROM ('{month.isoformat()}') TO ('{upto.isoformat()}')")
    _new_tables(sqlite=False)
    columns = ", ".join(EVENT_COLUMNS)
    conn.exec_driver_sql(f"INSERT INTO usage_events ({columns}) SELECT {columns} FROM usage_events_0001")
    conn.exec_driver_sql("INSERT INTO usage_event_ids (event_id) SELECT event_id FROM usage_events_0001")
    conn.exec_driver_sql("DROP TABLE usage_events_0001")
    _event_indexes()
    # a DELETE of events (by hand, or a test) forgets their ids too, so they can be sent again
    conn.exec_driver_sql(
        "CREATE FUNCTION usage_events_forget_ids() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "DELETE FROM usage_event_ids i USING gone g WHERE i.event_id = g.event_id; RETURN NULL; END $$")
    conn.exec_driver_sql(
        "CREATE TRIGGER usage_events_forget_ids AFTER DELETE ON usage_events REFERENCING OLD TABLE AS gone "
        "FOR EACH STATEMENT EXECUTE FUNCTION usage_events_forget_ids()")
    # the queue is small and churns: vacuum it as soon as a few thousand rows are dead
    conn.exec_driver_sql(
        "ALTER TABLE usage_fold_queue SET (autovacuum_vacuum_scale_factor = 0, "
        "autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_delay = 0)")
    conn.exec_driver_sql("INSERT INTO rollup_fold_state (id, folded_seq) VALUES (1, 0)")

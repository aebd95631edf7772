"""The schema. Every table is created by an Alembic migration (storage/migrations).

Conventions: times are UTC (`UTCDateTime`), days and months are the organisation's
local calendar (`day`, `month` = "YYYY-MM"), event tokens are 64-bit integers, rollup token
sums `WideCount` and money `Money`: exact and never overflowing (storage/types.py).
A `user_key` is the person spend is attributed to: a Slack user id when the source
identity is linked, else the raw id as sent (unlinked).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ARRAY,
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from storage.types import Money, UTCDateTime, WideCount

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _tokens() -> Mapped[int]:
    return mapped_column(BigInteger, nullable=False, default=0, server_default="0")


def _wide() -> Mapped[int]:
    return mapped_column(WideCount, nullable=False, default=0, server_default="0")


def _money() -> Mapped[Decimal]:
    return mapped_column(Money, nullable=False, default=Decimal(0), server_default="0")


class UsageEvent(Base):
    """One model call, provider bucket or ledger correction, stored once per `event_id`.

    The physical tables differ (migration 0002_ledger):
    - SQLite: `seq INTEGER PRIMARY KEY` (the rowid, unmapped here) orders the ledger for the
      rollup fold; `event_id` is UNIQUE.
    - PostgreSQL: partitioned by month on `day`; `event_id` is unique through
      `usage_event_ids` (a partitioned table cannot have a unique index without the key).
    Indexes are only those reads need: `subject` (re-attribution) and unpriced models (reprice).
    """

    __tablename__ = "usage_events"

    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    day: Mapped[date] = mapped_column(Date, nullable=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    source: Mapped[str] = mapped_column(String(20), nullable=False)
    subject: Mapped[str] = mapped_column(String(320), nullable=False)
    user_key: Mapped[str] = mapped_column(String(320), nullable=False)
    model: Mapped[str] = mapped_column(String(200), nullable=False)
    provider: Mapped[str | None] = mapped_column(String(100))
    team: Mapped[str | None] = mapped_column(String(200))
    project: Mapped[str | None] = mapped_column(String(200))
    input_tokens: Mapped[int] = _tokens()
    cached_input_tokens: Mapped[int] = _tokens()
    output_tokens: Mapped[int] = _tokens()
    reasoning_tokens: Mapped[int] = _tokens()
    cost_usd: Mapped[Decimal] = _money()
    # how the cost was found: "source" | "override" | "genai-prices <version>" | "unpriced"
    price_source: Mapped[str] = mapped_column(String(60), nullable=False)
    unpriced: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON)
    # served from a gateway's cache (LiteLLM cache_hit): stored with no tokens and no cost (0003_senders)
    cache_hit: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    # the team the event was charged to when stored, "" for none (0004_teams; bot/teams/assign.py)
    charge_team: Mapped[str] = mapped_column(String(200), nullable=False, default="", server_default="")

    __table_args__ = (
        Index("ix_usage_events_subject", "subject"),
        Index("ix_usage_events_unpriced", "model", postgresql_where=text("unpriced"), sqlite_where=text("unpriced")),
    )


class UsageEventId(Base):
    """PostgreSQL: the ids of stored events, the one place uniqueness holds across partitions.

    Rows go with their partition when retention drops it (events older than the retention
    window are refused, so a resend of a dropped event cannot count twice).
    """

    __tablename__ = "usage_event_ids"
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)


def _array(item) -> Mapped[list]:
    return mapped_column(ARRAY(item).with_variant(JSON, "sqlite"), nullable=False)


class UsageFoldQueue(Base):
    """PostgreSQL: rollup deltas committed with the events that caused them, not yet folded.

    One row per ingest transaction (arrays of per person/day/model sums): any process folds
    them into the rollups under an advisory lock, deleting the rows it folded in the same
    transaction, so each delta counts exactly once whatever the order transactions commit in.
    """

    __tablename__ = "usage_fold_queue"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    user_keys: Mapped[list] = _array(Text)
    days: Mapped[list] = _array(Date)
    models: Mapped[list] = _array(Text)
    input_tokens: Mapped[list] = _array(Numeric)
    cached_input_tokens: Mapped[list] = _array(Numeric)
    output_tokens: Mapped[list] = _array(Numeric)
    reasoning_tokens: Mapped[list] = _array(Numeric)
    cost_usd: Mapped[list] = _array(Numeric)
    events: Mapped[list] = _array(BigInteger)
    unpriced_events: Mapped[list] = _array(BigInteger)


class RollupFoldState(Base):
    """SQLite: the `seq` up to which events are folded into the rollups (one row)."""

    __tablename__ = "rollup_fold_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    folded_seq: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class _Measures:
    input_tokens: Mapped[int] = _wide()
    cached_input_tokens: Mapped[int] = _wide()
    output_tokens: Mapped[int] = _wide()
    reasoning_tokens: Mapped[int] = _wide()
    cost_usd: Mapped[Decimal] = _money()
    events: Mapped[int] = _tokens()
    unpriced_events: Mapped[int] = _tokens()


MEASURES = (
    "input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens",
    "cost_usd", "events", "unpriced_events",
)


class UsageDailyModel(_Measures, Base):
    """Per person, local day and model: top models, trends, digests."""

    __tablename__ = "usage_daily_model"
    user_key: Mapped[str] = mapped_column(String(320), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    model: Mapped[str] = mapped_column(String(200), primary_key=True)

    __table_args__ = (Index("ix_usage_daily_model_day", "day"),)


class UsageDaily(_Measures, Base):
    """Per person and local day: leaderboards for today/week, trends, anomalies."""

    __tablename__ = "usage_daily"
    user_key: Mapped[str] = mapped_column(String(320), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)

    __table_args__ = (Index("ix_usage_daily_day", "day"),)


class UsageMonthly(_Measures, Base):
    """Per person and local month: budgets, the limits API, monthly ranks."""

    __tablename__ = "usage_monthly"
    user_key: Mapped[str] = mapped_column(String(320), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)

    __table_args__ = (Index("ix_usage_monthly_month", "month"),)


class Identity(Base):
    """An external id (email, API key, gateway user) and the Slack user it belongs to.

    `slack_user_id` is NULL for an email Slack did not know when last asked
    (`checked_at`), so lookups are not repeated on every event.
    """

    __tablename__ = "identities"
    external_id: Mapped[str] = mapped_column(String(320), primary_key=True)
    slack_user_id: Mapped[str | None] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(20), nullable=False)  # "admin" | "email"
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    set_by: Mapped[str | None] = mapped_column(String(32))


class Person(Base):
    """What Slack told us about a user (users.info), for names and admin checks."""

    __tablename__ = "people"
    slack_user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    tz: Mapped[str | None] = mapped_column(String(64))
    is_workspace_admin: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class Budget(Base):
    """A standing monthly budget set by an admin or by a "from now on" approval."""

    __tablename__ = "budgets"
    user_key: Mapped[str] = mapped_column(String(320), primary_key=True)
    monthly_usd: Mapped[Decimal] = mapped_column(Money, nullable=False)
    set_by: Mapped[str] = mapped_column(String(32), nullable=False)
    set_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class BudgetRaise(Base):
    """A "this month only" raise: part of the limit for `month`, gone after it."""

    __tablename__ = "budget_raises"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_key: Mapped[str] = mapped_column(String(320), nullable=False)
    month: Mapped[str] = mapped_column(String(7), nullable=False)
    amount_usd: Mapped[Decimal] = mapped_column(Money, nullable=False)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("budget_requests.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)

    __table_args__ = (Index("ix_budget_raises_user_key_month", "user_key", "month"),)


class ApproverAssignment(Base):
    """An approver set with `/tokens admin approver`."""

    __tablename__ = "approver_assignments"
    requester: Mapped[str] = mapped_column(String(32), primary_key=True)
    approver: Mapped[str] = mapped_column(String(32), nullable=False)
    set_by: Mapped[str] = mapped_column(String(32), nullable=False)
    set_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class BudgetRequest(Base):
    """A request for more budget and its decision. One pending request per person."""

    __tablename__ = "budget_requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    requester: Mapped[str] = mapped_column(String(32), nullable=False)
    amount_usd: Mapped[Decimal] = mapped_column(Money, nullable=False)
    granted_usd: Mapped[Decimal | None] = mapped_column(Money)
    reason: Mapped[str | None] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(String(10), nullable=False)  # "month" | "standing"
    month: Mapped[str] = mapped_column(String(7), nullable=False)
    status: Mapped[str] = mapped_column(String(10), nullable=False, default="pending")
    approvers: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    limit_before_usd: Mapped[Decimal] = mapped_column(Money, nullable=False)
    decided_by: Mapped[str | None] = mapped_column(String(32))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_note: Mapped[str | None] = mapped_column(Text)
    automatic: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # where the approvers' DMs are, so any process can chat.update them later
    messages: Mapped[list[dict[str, str]]] = mapped_column(JSON, nullable=False, default=list)

    __table_args__ = (
        Index(
            "uq_budget_requests_one_pending",
            "requester",
            unique=True,
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index("ix_budget_requests_status_created_at", "status", "created_at"),
    )


class AuditRecord(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    actor: Mapped[str] = mapped_column(String(32), nullable=False)
    action: Mapped[str] = mapped_column(String(40), nullable=False)
    subject_user: Mapped[str | None] = mapped_column(String(320))
    request_id: Mapped[int | None] = mapped_column(ForeignKey("budget_requests.id"))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)

    __table_args__ = (Index("ix_audit_log_subject_user_at", "subject_user", "at"),)


class OutboxMessage(Base):
    """A durable outgoing delivery (`limit.changed`), retried until accepted."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    msg_id: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    # a lease, so two processes never deliver the same row at the same time
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_outbox_pending", "delivered_at", "next_attempt_at"),)


class DigestSubscription(Base):
    """A digest set with `/tokens admin digest` (config `[[digests]]` are read from the file)."""

    __tablename__ = "digest_subscriptions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(32), nullable=False)
    local_time: Mapped[str] = mapped_column(String(5), nullable=False)  # "HH:MM"
    period: Mapped[str] = mapped_column(String(10), nullable=False, default="day")
    top: Mapped[int] = mapped_column(Integer, nullable=False, default=10)
    leaderboard: Mapped[str | None] = mapped_column(String(10))
    created_by: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)

    __table_args__ = (UniqueConstraint("channel", "period"),)


class DigestRun(Base):
    """The once-only claim of one digest: (channel, period, first day covered)."""

    __tablename__ = "digest_runs"
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    period: Mapped[str] = mapped_column(String(10), primary_key=True)
    period_start: Mapped[date] = mapped_column(Date, primary_key=True)
    status: Mapped[str] = mapped_column(String(10), nullable=False)  # claimed | posted | failed
    claimed_by: Mapped[str] = mapped_column(String(100), nullable=False)
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    lease_until: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    posted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    message_ts: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)


class AlertSent(Base):
    """One budget alert per person, kind, month and threshold, whatever the process."""

    __tablename__ = "alerts_sent"
    user_key: Mapped[str] = mapped_column(String(320), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)  # "threshold" | "forecast"
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    threshold: Mapped[str] = mapped_column(String(10), primary_key=True)  # "0.8", "" for forecast
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class SlackEventSeen(Base):
    """Events API `event_id`s already handled: Slack retries up to three times."""

    __tablename__ = "slack_events_seen"
    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class Setting(Base):
    """Small facts about the database itself (e.g. the time zone rollups were built in)."""

    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)


# --------------------------------------------------------------------------- provider sources (SPEC 10)

class SourceState(Base):
    """A provider source's pull state per endpoint (`endpoint = "*"` holds the source's lease).

    `cursor` is where the next poll starts before the open-bucket window is re-read;
    `key_alerted_at` keeps the "admin key refused" DM to one per outage (migration 0005_sources).
    """

    __tablename__ = "source_state"
    source: Mapped[str] = mapped_column(String(20), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(40), primary_key=True)
    cursor: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    errors: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    notes: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    key_alerted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ProviderBucket(Base):
    """One provider usage bucket as last seen (provider, endpoint, start, group keys): its figures,
    what it cost, and how many ledger rows (`revision`) carry it. A re-polled bucket with other
    figures adds a ledger row of the difference (`<bucket_id>#r<revision>`)."""

    __tablename__ = "provider_buckets"
    bucket_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    source: Mapped[str] = mapped_column(String(20), nullable=False)
    day: Mapped[date] = mapped_column(Date, nullable=False)  # UTC day of the bucket's start
    project: Mapped[str | None] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(200), nullable=False)
    input_tokens: Mapped[int] = _tokens()
    cached_input_tokens: Mapped[int] = _tokens()
    output_tokens: Mapped[int] = _tokens()
    cost_usd: Mapped[Decimal] = _money()
    unpriced: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    counted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    revision: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    figures: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)

    __table_args__ = (Index("ix_provider_buckets_source_day", "source", "day"),)


class ProviderCost(Base):
    """The bill side: a provider's daily cost per project (workspace) and line item, as it says."""

    __tablename__ = "provider_costs"
    source: Mapped[str] = mapped_column(String(20), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)  # UTC day
    project: Mapped[str] = mapped_column(String(200), primary_key=True)  # "" when none
    line_item: Mapped[str] = mapped_column(String(200), primary_key=True)
    amount_usd: Mapped[Decimal] = _money()
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class ProviderUser(Base):
    """A provider's user id and email (OpenAI's organization users), for attribution."""

    __tablename__ = "provider_users"
    source: Mapped[str] = mapped_column(String(20), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    email: Mapped[str | None] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(200))


class ClaudeCodeDay(Base):
    """Claude Code per actor (email or API key) per UTC day: tokens and estimated cost, and output.
    Not spend in the ledger (the same calls are in the messages usage and the invoice)."""

    __tablename__ = "claude_code_days"
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    actor: Mapped[str] = mapped_column(String(320), primary_key=True)
    user_key: Mapped[str] = mapped_column(String(320), nullable=False)
    sessions: Mapped[int] = _tokens()
    lines_added: Mapped[int] = _tokens()
    lines_removed: Mapped[int] = _tokens()
    commits: Mapped[int] = _tokens()
    pull_requests: Mapped[int] = _tokens()
    tokens: Mapped[int] = _tokens()
    estimated_cost_usd: Mapped[Decimal] = _money()
    models: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)

    __table_args__ = (Index("ix_claude_code_days_user_key_day", "user_key", "day"),)
class EnforcePush(Base):
    """One enforcer's copy of one subject's limit (SPEC 11): a decision bumps `version` in its own
    transaction; delivery pushes the subject's state as it is then and records `pushed_version`."""

    __tablename__ = "enforce_pushes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    enforcer: Mapped[str] = mapped_column(String(20), nullable=False)  # "litellm" | "openai"
    subject: Mapped[str] = mapped_column(String(340), nullable=False)  # "user:U0ALICE", "team:x", "project:p"
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    pushed_version: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pushed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)  # what was last pushed

    __table_args__ = (UniqueConstraint("enforcer", "subject"), Index("ix_enforce_pushes_due", "next_attempt_at"))


class EnforcerHealth(Base):
    """Per enforcer: last success and failure, and whether admins were told it keeps failing."""

    __tablename__ = "enforcer_health"
    enforcer: Mapped[str] = mapped_column(String(20), primary_key=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    told_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class BreakerTrip(Base):
    """A runaway-spend trip (SPEC 12): one row per subject per episode, whatever the process."""

    __tablename__ = "breaker_trips"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject: Mapped[str] = mapped_column(String(340), nullable=False)  # "user:U0ALICE" | "key:<id>"
    episode: Mapped[int] = mapped_column(Integer, nullable=False)
    user_key: Mapped[str | None] = mapped_column(String(320))  # None: an unattributed key (admins decide)
    key_id: Mapped[str | None] = mapped_column(String(320))  # the API key or agent id behind most of it
    model: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(12), nullable=False)  # alert | paused | resumed | ignored
    mode: Mapped[str] = mapped_column(String(8), nullable=False)  # the breaker mode when it tripped
    tripped_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    window_minutes: Mapped[int] = mapped_column(Integer, nullable=False)
    window_usd: Mapped[Decimal] = mapped_column(Money, nullable=False)
    usual_usd: Mapped[Decimal] = mapped_column(Money, nullable=False)
    quiet_until: Mapped[datetime | None] = mapped_column(UTCDateTime)  # no new episode before this
    auto_resume_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(32))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    messages: Mapped[list[Any]] = mapped_column(JSON, nullable=False, default=list)  # [[channel, ts], ...]

    __table_args__ = (UniqueConstraint("subject", "episode"), Index("ix_breaker_trips_user_key_status",
                                                                     "user_key", "status"),
                      Index("ix_breaker_trips_tripped_at", "tripped_at"))
class UsageTeamMonthly(_Measures, Base):
    """Per local month, team ("" none), person, model and project ("" none): team cards and the
    chargeback export (0004_teams). Folded with the person rollups (storage/team_fold.py)."""

    __tablename__ = "usage_team_monthly"
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    team: Mapped[str] = mapped_column(String(200), primary_key=True)
    user_key: Mapped[str] = mapped_column(String(320), primary_key=True)
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    project: Mapped[str] = mapped_column(String(200), primary_key=True)


class UsageTeamDaily(_Measures, Base):
    """Per local day and team ("" none): team lines of digests, team digests (0004_teams)."""

    __tablename__ = "usage_team_daily"
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    team: Mapped[str] = mapped_column(String(200), primary_key=True)


class TeamFoldQueue(Base):
    """PostgreSQL: team rollup deltas committed with their events (like `usage_fold_queue`)."""

    __tablename__ = "team_fold_queue"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    teams: Mapped[list] = _array(Text)
    user_keys: Mapped[list] = _array(Text)
    days: Mapped[list] = _array(Date)
    models: Mapped[list] = _array(Text)
    projects: Mapped[list] = _array(Text)
    input_tokens: Mapped[list] = _array(Numeric)
    cached_input_tokens: Mapped[list] = _array(Numeric)
    output_tokens: Mapped[list] = _array(Numeric)
    reasoning_tokens: Mapped[list] = _array(Numeric)
    cost_usd: Mapped[list] = _array(Numeric)
    events: Mapped[list] = _array(BigInteger)
    unpriced_events: Mapped[list] = _array(BigInteger)


class TeamMembership(Base):
    """Who was in a team, from `since` until `until` (NULL: still), listed in config or synced."""

    __tablename__ = "team_memberships"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    team: Mapped[str] = mapped_column(String(200), nullable=False)
    user_id: Mapped[str] = mapped_column(String(32), nullable=False)
    source: Mapped[str] = mapped_column(String(10), nullable=False)  # "config" | "usergroup"
    since: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    until: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("uq_team_memberships_current", "team", "user_id", "source", unique=True,
              postgresql_where=text("until IS NULL"), sqlite_where=text("until IS NULL")),
    )


class TeamSyncState(Base):
    """The last `usergroups.users.list` of a team's user group, and the error if it failed."""

    __tablename__ = "team_sync_state"
    team: Mapped[str] = mapped_column(String(200), primary_key=True)
    usergroup: Mapped[str] = mapped_column(String(32), nullable=False)
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    members: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    error_reported: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())

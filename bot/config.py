"""Settings from the environment (and `.env`) plus the TOML file of SPEC 3, validated once.

Every problem is a `ConfigError` whose message names the key and what is wrong, so the
CLI can stop with one clear line. The checks of single values (a URL, a user id, an amount)
are bot/config_values.py.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot.config_values import SLACK_USER_ID as SLACK_USER_ID  # re-exported: modules import it from here
from bot.config_values import (
    ConfigError,
    _check_whsec,
    _choice,
    _decimal,
    _money,
    _port,
    _table,
    _url,
    _user_id,
    _user_ids,
    _zone,
)
from bot.enforce_config import BreakerSettings, EnforceSettings, parse_breaker, parse_enforce
from bot.providers.settings import SourcesConfig, leaderboard_table, parse_sources, with_environment
from bot.teams.config import TeamConfig, parse_teams, team_approvers

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./tokenbot.db"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"
PRIVACY_MODES = ("names", "anonymous", "off")
DIGEST_PERIODS = ("day", "week")
SLACK_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")


@dataclass(frozen=True)
class ModelPrice:
    """A configured price in USD per million tokens."""

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None


@dataclass(frozen=True)
class DigestConfig:
    channel: str
    time: time
    period: str = "day"
    top: int = 10
    leaderboard: str | None = None


@dataclass(frozen=True)
class Settings:
    # environment
    slack_bot_token: str | None = None
    slack_signing_secret: str | None = None
    slack_app_token: str | None = None
    slack_api_url: str = DEFAULT_SLACK_API_URL
    database_url: str = DEFAULT_DATABASE_URL
    host: str = "0.0.0.0"
    port: int = 3000
    config_path: Path | None = None
    usage_webhook_secret: str | None = None
    usage_webhook_token: str | None = None
    api_token: str | None = None
    limits_webhook_url: str | None = None
    limits_webhook_secret: str | None = None
    openai_admin_key: str | None = None
    openai_base_url: str | None = None
    metrics_token: str | None = None  # METRICS_TOKEN: bearer token for GET /metrics (unset: open)
    litellm_master_key: str | None = None  # LITELLM_MASTER_KEY, for [enforce.litellm]
    # TOML file
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    admins: tuple[str, ...] = ()
    leaderboard: str = "names"
    default_monthly_usd: Decimal = Decimal(200)
    alert_thresholds: tuple[Decimal, ...] = (Decimal("0.5"), Decimal("0.8"), Decimal("1.0"))
    user_budgets: dict[str, Decimal] = field(default_factory=dict)
    default_approvers: tuple[str, ...] = ()
    expire_after_hours: int = 72
    remind_after_hours: int = 24
    max_request_usd: Decimal = Decimal(10000)
    auto_approve_under_usd: Decimal = Decimal(0)
    manager_field: str | None = "Manager"
    approvers: dict[str, str] = field(default_factory=dict)
    identities: dict[str, str] = field(default_factory=dict)
    digests: tuple[DigestConfig, ...] = ()
    model_prices: dict[str, ModelPrice] = field(default_factory=dict)
    # [litellm]: the zone of the LiteLLM host's clock, for the legacy v1 shape's naive startTime
    litellm_legacy_timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    # limits that keep a stuck sender or a frozen database from holding requests open (not in
    # the config file: a deployment rarely needs them; tests make them short)
    body_timeout_seconds: float = 30.0  # no body byte for this long (or 10x in all): 503
    ingest_timeout_seconds: float = 60.0  # a batch not committed within this: 503, the sender retries
    statement_timeout_seconds: float = 120.0  # PostgreSQL statement_timeout for the process's sessions
    retention_raw_days: int = 400  # [retention] raw_days: raw events kept this long; rollups forever
    fold_interval_seconds: float = 0.5  # [ledger] fold_interval_seconds: rollups trail events by about this
    # [sources.*], [reconcile], leaderboard.show_output and the admin keys (SPEC 10; bot/providers/settings.py)
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    enforce: EnforceSettings = field(default_factory=EnforceSettings)  # [enforce.*] (bot/enforce_config.py)
    breaker: BreakerSettings = field(default_factory=BreakerSettings)  # [breaker]
    # [teams.<name>] in file order (bot/teams/config.py); [approvals] team_approver
    teams: dict[str, TeamConfig] = field(default_factory=dict)
    team_approvers: tuple[str, ...] = ()

    def require_slack(self, *, http_mode: bool) -> None:
        """`serve` needs Slack credentials; other commands don't."""
        if not self.slack_bot_token:
            raise ConfigError("SLACK_BOT_TOKEN: required by `tokenbot serve` (the bot token, xoxb-...)")
        if http_mode and not self.slack_signing_secret:
            raise ConfigError(
                "SLACK_SIGNING_SECRET: required by `tokenbot serve` in HTTP mode "
                "(or set SLACK_APP_TOKEN for Socket Mode)"
            )


def load_settings(environ: dict[str, str] | None = None, *, read_dotenv: bool = True) -> Settings:
    """Read and validate every setting; raise ConfigError on the first bad one."""
    if environ is None:
        if read_dotenv:
            _load_dotenv()
        environ = dict(os.environ)
    env = {k: v for k, v in environ.items() if v != ""}

    values: dict[str, Any] = {
        "slack_bot_token": env.get("SLACK_BOT_TOKEN"),
        "slack_signing_secret": env.get("SLACK_SIGNING_SECRET"),
        "slack_app_token": env.get("SLACK_APP_TOKEN"),
        "slack_api_url": _url(env, "SLACK_API_URL", DEFAULT_SLACK_API_URL, trailing_slash=True),
        "database_url": env.get("DATABASE_URL", DEFAULT_DATABASE_URL),
        "host": env.get("HOST", "0.0.0.0"),
        "port": _port(env.get("PORT", "3000")),
        "usage_webhook_secret": env.get("USAGE_WEBHOOK_SECRET"),
        "usage_webhook_token": env.get("USAGE_WEBHOOK_TOKEN"),
        "api_token": env.get("TOKENBOT_API_TOKEN"),
        "limits_webhook_url": _url(env, "LIMITS_WEBHOOK_URL", None),
        "limits_webhook_secret": env.get("LIMITS_WEBHOOK_SECRET"),
        "openai_admin_key": env.get("OPENAI_ADMIN_KEY"),
        "openai_base_url": _url(env, "OPENAI_BASE_URL", None),
        "metrics_token": env.get("METRICS_TOKEN"),
        "litellm_master_key": env.get("LITELLM_MASTER_KEY"),
    }
    token = values["slack_bot_token"]
    if token and not token.startswith("xoxb-"):
        raise ConfigError("SLACK_BOT_TOKEN: must be a bot token starting with xoxb-")
    app_token = values["slack_app_token"]
    if app_token and not app_token.startswith("xapp-"):
        raise ConfigError("SLACK_APP_TOKEN: must be an app-level token starting with xapp-")
    secret = values["usage_webhook_secret"]
    if secret:
        _check_whsec("USAGE_WEBHOOK_SECRET", secret)
    if values["limits_webhook_secret"]:
        _check_whsec("LIMITS_WEBHOOK_SECRET", values["limits_webhook_secret"])
    if values["limits_webhook_url"] and not values["limits_webhook_secret"]:
        raise ConfigError("LIMITS_WEBHOOK_SECRET: required when LIMITS_WEBHOOK_URL is set (whsec_...)")
    url = values["database_url"]
    if not re.match(r"^(sqlite\+aiosqlite|postgresql\+asyncpg|postgresql|postgres)://", url):
        raise ConfigError(
            "DATABASE_URL: must start with sqlite+aiosqlite:// or postgresql+asyncpg:// "
            f"(got {url.split(':', 1)[0]}://...)"
        )
    values["database_url"] = normalise_database_url(url)

    path = env.get("TOKENBOT_CONFIG")
    if path:
        config_path = Path(path)
        if not config_path.is_file():
            raise ConfigError(f"TOKENBOT_CONFIG: no such file: {path}")
    else:
        config_path = Path("tokenbot.toml") if Path("tokenbot.toml").is_file() else None
    values["config_path"] = config_path
    if config_path is not None:
        values.update(_parse_toml(config_path))
    values["sources"] = with_environment(values.get("sources") or SourcesConfig(), env)
    return Settings(**values)


def normalise_database_url(url: str) -> str:
    """Accept the plain postgres:// URLs that hosting platforms hand out."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def parse_toml_text(text: str, *, source: str = "config") -> dict[str, Any]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    return _toml_values(data)


def _parse_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc}") from None
    return parse_toml_text(text, source=str(path))


def _toml_values(data: dict[str, Any]) -> dict[str, Any]:
    known = {"timezone", "admins", "leaderboard", "budgets", "approvals", "identities", "digests", "pricing",
             "litellm", "retention", "ledger", "sources", "reconcile", "enforce", "breaker", "teams"}
    for key in data:
        if key not in known:
            raise ConfigError(f"{key}: unknown setting (known: {', '.join(sorted(known))})")
    out: dict[str, Any] = {}
    if "enforce" in data:
        out["enforce"] = parse_enforce(data["enforce"])
    if "breaker" in data:
        out["breaker"] = parse_breaker(data["breaker"])
    if "timezone" in data:
        out["timezone"] = _zone(data["timezone"])
    if "admins" in data:
        out["admins"] = tuple(_user_ids("admins", data["admins"]))
    show_output = False
    if isinstance(data.get("leaderboard"), dict):  # [leaderboard] privacy = "names", show_output = true
        privacy, show_output = leaderboard_table(data["leaderboard"])
        if privacy is not None:
            out["leaderboard"] = _choice("leaderboard.privacy", privacy, PRIVACY_MODES)
    elif "leaderboard" in data:
        out["leaderboard"] = _choice("leaderboard", data["leaderboard"], PRIVACY_MODES)
    out["sources"] = parse_sources(data, {}, show_output=show_output)

    budgets = _table("budgets", data.get("budgets", {}))
    if "default_monthly_usd" in budgets:
        out["default_monthly_usd"] = _money("budgets.default_monthly_usd", budgets["default_monthly_usd"])
    if "alert_thresholds" in budgets:
        raw = budgets["alert_thresholds"]
        if not isinstance(raw, list) or not raw:
            raise ConfigError("budgets.alert_thresholds: must be a non-empty list of fractions like [0.5, 0.8, 1.0]")
        thresholds = [_decimal(f"budgets.alert_thresholds[{i}]", v) for i, v in enumerate(raw)]
        for i, v in enumerate(thresholds):
            if not (Decimal(0) < v <= Decimal(5)):
                raise ConfigError(f"budgets.alert_thresholds[{i}]: must be a fraction above 0 (1.0 = 100%)")
        out["alert_thresholds"] = tuple(sorted(set(thresholds)))
    if "users" in budgets:
        users = _table("budgets.users", budgets["users"])
        out["user_budgets"] = {
            _user_id(f"budgets.users.{k}", k): _money(f"budgets.users.{k}", v) for k, v in users.items()
        }
    for key in budgets:
        if key not in ("default_monthly_usd", "alert_thresholds", "users"):
            raise ConfigError(f"budgets.{key}: unknown setting")

    approvals = _table("approvals", data.get("approvals", {}))
    for key in approvals:
        if key not in (
            "default_approvers", "expire_after_hours", "remind_after_hours", "max_request_usd",
            "auto_approve_under_usd", "manager_field", "approver", "team_approver",
        ):
            raise ConfigError(f"approvals.{key}: unknown setting")
    if "default_approvers" in approvals:
        out["default_approvers"] = tuple(_user_ids("approvals.default_approvers", approvals["default_approvers"]))
    for key in ("expire_after_hours", "remind_after_hours"):
        if key in approvals:
            value = approvals[key]
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"approvals.{key}: must be a whole number of hours above 0")
            out[key] = value
    if "max_request_usd" in approvals:
        out["max_request_usd"] = _money("approvals.max_request_usd", approvals["max_request_usd"])
    if "auto_approve_under_usd" in approvals:
        out["auto_approve_under_usd"] = _money("approvals.auto_approve_under_usd", approvals["auto_approve_under_usd"])
    if "manager_field" in approvals:
        value = approvals["manager_field"]
        if not isinstance(value, str):
            raise ConfigError("approvals.manager_field: must be the label of a Slack profile field, like \"Manager\"")
        out["manager_field"] = value or None
    if "approver" in approvals:
        table = _table("approvals.approver", approvals["approver"])
        mapping = {}
        for requester, approver in table.items():
            _user_id(f"approvals.approver.{requester}", requester)
            _user_id(f"approvals.approver.{requester}", approver)
            if requester == approver:
                raise ConfigError(f"approvals.approver.{requester}: a person cannot approve their own requests")
            mapping[requester] = approver
        out["approvers"] = mapping

    if "team_approver" in approvals:
        out["team_approvers"] = team_approvers(approvals["team_approver"])
    if "teams" in data:
        out["teams"] = parse_teams(data["teams"])

    if "identities" in data:
        table = _table("identities", data["identities"])
        out["identities"] = {str(k): _user_id(f"identities.{k}", v) for k, v in table.items()}

    if "digests" in data:
        raw = data["digests"]
        if not isinstance(raw, list):
            raise ConfigError("digests: must be an array of tables ([[digests]])")
        out["digests"] = tuple(_digest(i, d) for i, d in enumerate(raw))

    litellm = _table("litellm", data.get("litellm", {}))
    for key in litellm:
        if key != "legacy_timezone":
            raise ConfigError(f"litellm.{key}: unknown setting (known: legacy_timezone)")
    if "legacy_timezone" in litellm:
        try:
            out["litellm_legacy_timezone"] = _zone(litellm["legacy_timezone"])
        except ConfigError as exc:
            raise ConfigError(f"litellm.legacy_{exc}") from None

    pricing = _table("pricing", data.get("pricing", {}))
    for key in pricing:
        if key != "models":
            raise ConfigError(f"pricing.{key}: unknown setting (use [pricing.models.\"<model>\"])")
    models = _table("pricing.models", pricing.get("models", {}))
    prices = {}
    for name, entry in models.items():
        key = f"pricing.models.{name}"
        entry = _table(key, entry)
        for field_name in entry:
            if field_name not in ("input", "output", "cached_input"):
                raise ConfigError(f"{key}.{field_name}: unknown price (use input, cached_input, output)")
        if "input" not in entry or "output" not in entry:
            raise ConfigError(f"{key}: needs both input and output (USD per million tokens)")
        prices[name.lower()] = ModelPrice(
            input=_money(f"{key}.input", entry["input"]),
            output=_money(f"{key}.output", entry["output"]),
            cached_input=_money(f"{key}.cached_input", entry["cached_input"]) if "cached_input" in entry else None,
        )
    out["model_prices"] = prices

    retention = _table("retention", data.get("retention", {}))
    for key in retention:
        if key != "raw_days":
            raise ConfigError(f"retention.{key}: unknown setting (known: raw_days)")
    if "raw_days" in retention:
        value = retention["raw_days"]
        if not isinstance(value, int) or isinstance(value, bool) or not 31 <= value <= 36_500:
            raise ConfigError("retention.raw_days: must be a whole number of days from 31 to 36500")
        out["retention_raw_days"] = value
    ledger = _table("ledger", data.get("ledger", {}))
    for key in ledger:
        if key != "fold_interval_seconds":
            raise ConfigError(f"ledger.{key}: unknown setting (known: fold_interval_seconds)")
    if "fold_interval_seconds" in ledger:
        value = ledger["fold_interval_seconds"]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 60:
            raise ConfigError("ledger.fold_interval_seconds: must be a number of seconds from 0 to 60")
        out["fold_interval_seconds"] = float(value)
    return out


def _digest(index: int, raw: Any) -> DigestConfig:
    key = f"digests[{index}]"
    raw = _table(key, raw)
    for name in raw:
        if name not in ("channel", "time", "period", "top", "leaderboard"):
            raise ConfigError(f"{key}.{name}: unknown setting")
    channel = raw.get("channel")
    if not isinstance(channel, str) or not SLACK_CHANNEL_ID.match(channel):
        raise ConfigError(f"{key}.channel: must be a Slack channel id like C0AISPEND")
    top = raw.get("top", 10)
    if not isinstance(top, int) or isinstance(top, bool) or not 1 <= top <= 50:
        raise ConfigError(f"{key}.top: must be a whole number from 1 to 50")
    leaderboard = raw.get("leaderboard")
    if leaderboard is not None:
        leaderboard = _choice(f"{key}.leaderboard", leaderboard, PRIVACY_MODES)
    return DigestConfig(
        channel=channel,
        time=parse_hhmm(raw.get("time", "09:00"), key=f"{key}.time"),
        period=_choice(f"{key}.period", raw.get("period", "day"), DIGEST_PERIODS),
        top=top,
        leaderboard=leaderboard,
    )


def parse_hhmm(value: Any, *, key: str) -> time:
    if isinstance(value, time):
        return value.replace(second=0, microsecond=0)
    if isinstance(value, str):
        match = re.fullmatch(r"(\d{1,2}):(\d{2})", value.strip())
        if match and int(match[1]) < 24 and int(match[2]) < 60:
            return time(int(match[1]), int(match[2]))
    raise ConfigError(f"{key}: must be a local time like \"09:00\"")


def _load_dotenv() -> None:
    try:
        from dotenv import load_dotenv
    except ImportError:  # pragma: no cover - python-dotenv is a dependency
        return
    load_dotenv(Path.cwd() / ".env", override=False)

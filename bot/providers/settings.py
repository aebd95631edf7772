"""`[sources.openai]`, `[sources.anthropic]`, `[reconcile]` and `leaderboard.show_output` (SPEC 10).

All of it is one `Settings.sources` value (`SourcesConfig`): the admin keys and base URLs come from
the environment, the rest from the TOML file. A source polls when its admin key is set; its table
is optional (defaults below).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bot.config_values import ConfigError, _decimal, _table

COUNT_MODES = ("all", "none")
SOURCE_NAMES = ("openai", "anthropic")
DEFAULT_URLS = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com"}


@dataclass(frozen=True)
class SourceConfig:
    name: str
    admin_key: str | None = None
    base_url: str | None = None
    every_minutes: int = 60
    count: str = "all"  # "all": buckets are spend in the ledger; "none": the bill side only
    backfill_days: int = 31
    reopen_hours: int = 48  # buckets this recent are read again each poll (they can still grow)
    claude_code: bool = True  # anthropic: the Claude Code report

    @property
    def enabled(self) -> bool:
        return bool(self.admin_key)

    @property
    def counts(self) -> bool:
        return self.count == "all"

    @property
    def url(self) -> str:
        return (self.base_url or DEFAULT_URLS[self.name]).rstrip("/")


@dataclass(frozen=True)
class SourcesConfig:
    openai: SourceConfig = field(default_factory=lambda: SourceConfig("openai"))
    anthropic: SourceConfig = field(default_factory=lambda: SourceConfig("anthropic", count="none"))
    tolerance_pct: Decimal = Decimal(1)  # [reconcile] tolerance_pct
    show_output: bool = False  # leaderboard.show_output

    def all(self) -> tuple[SourceConfig, ...]:
        return (self.openai, self.anthropic)

    def enabled(self) -> tuple[SourceConfig, ...]:
        return tuple(s for s in self.all() if s.enabled)

    def get(self, name: str) -> SourceConfig:
        if name not in SOURCE_NAMES:
            raise ConfigError(f"--source: unknown source {name!r} (known: {', '.join(SOURCE_NAMES)})")
        return getattr(self, name)


def _whole(key: str, value: Any, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"{key}: must be a whole number from {low} to {high}")
    return value


def _source(name: str, raw: Any, env: dict[str, str]) -> SourceConfig:
    table = _table(f"sources.{name}", raw)
    known = {"every_minutes", "count", "backfill_days", "reopen_hours"} | ({"claude_code"} if name == "anthropic"
                                                                            else set())
    for key in table:
        if key not in known:
            raise ConfigError(f"sources.{name}.{key}: unknown setting (known: {', '.join(sorted(known))})")
    values: dict[str, Any] = {"name": name, "admin_key": env.get(f"{name.upper()}_ADMIN_KEY"),
                              "base_url": env.get(f"{name.upper()}_BASE_URL")}
    if name == "anthropic":
        values["count"] = "none"
    if "every_minutes" in table:
        values["every_minutes"] = _whole(f"sources.{name}.every_minutes", table["every_minutes"], 1, 1440)
    if "backfill_days" in table:
        values["backfill_days"] = _whole(f"sources.{name}.backfill_days", table["backfill_days"], 0, 400)
    if "reopen_hours" in table:
        values["reopen_hours"] = _whole(f"sources.{name}.reopen_hours", table["reopen_hours"], 1, 24 * 31)
    if "count" in table:
        if table["count"] not in COUNT_MODES:
            raise ConfigError(f'sources.{name}.count: must be "all" or "none"')
        values["count"] = table["count"]
    if "claude_code" in table:
        if not isinstance(table["claude_code"], bool):
            raise ConfigError(f"sources.{name}.claude_code: must be true or false")
        values["claude_code"] = table["claude_code"]
    base = values["base_url"]
    if base and not base.startswith(("http://", "https://")):
        raise ConfigError(f"{name.upper()}_BASE_URL: must be an http(s) URL")
    return SourceConfig(**values)


def parse_sources(data: dict[str, Any], env: dict[str, str], *, show_output: bool = False) -> SourcesConfig:
    """`data` is the whole TOML document (or {}); `env` the environment."""
    sources = _table("sources", data.get("sources", {}))
    for key in sources:
        if key not in SOURCE_NAMES:
            raise ConfigError(f"sources.{key}: unknown source (known: {', '.join(SOURCE_NAMES)})")
    reconcile = _table("reconcile", data.get("reconcile", {}))
    for key in reconcile:
        if key != "tolerance_pct":
            raise ConfigError(f"reconcile.{key}: unknown setting (known: tolerance_pct)")
    tolerance = Decimal(1)
    if "tolerance_pct" in reconcile:
        tolerance = _decimal("reconcile.tolerance_pct", reconcile["tolerance_pct"])
        if not Decimal(0) <= tolerance <= Decimal(100):
            raise ConfigError("reconcile.tolerance_pct: must be a percentage from 0 to 100")
    return SourcesConfig(
        openai=_source("openai", sources.get("openai", {}), env),
        anthropic=_source("anthropic", sources.get("anthropic", {}), env),
        tolerance_pct=tolerance,
        show_output=show_output,
    )


def leaderboard_table(raw: Any) -> tuple[str | None, bool]:
    """`leaderboard` as a table: `[leaderboard] privacy = "names"`, `show_output = true`."""
    table = _table("leaderboard", raw)
    for key in table:
        if key not in ("privacy", "show_output"):
            raise ConfigError(f"leaderboard.{key}: unknown setting (known: privacy, show_output)")
    show = table.get("show_output", False)
    if not isinstance(show, bool):
        raise ConfigError("leaderboard.show_output: must be true or false")
    return table.get("privacy"), show


def with_environment(sources: SourcesConfig, env: dict[str, str]) -> SourcesConfig:
    """The admin keys and base URLs from the environment (OPENAI_/ANTHROPIC_ADMIN_KEY, _BASE_URL)."""
    from dataclasses import replace

    out = {}
    for source in sources.all():
        key, base = env.get(f"{source.name.upper()}_ADMIN_KEY"), env.get(f"{source.name.upper()}_BASE_URL")
        if base and not base.startswith(("http://", "https://")):
            raise ConfigError(f"{source.name.upper()}_BASE_URL: must be an http(s) URL")
        out[source.name] = replace(source, admin_key=key or source.admin_key, base_url=base or source.base_url)
    return replace(sources, **out)

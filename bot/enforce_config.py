"""`[enforce.litellm]`, `[enforce.openai]` and `[breaker]` (SPEC 11, 12), parsed for bot/config.py.

Kept apart so bot/config.py stays one screenful per section; every problem is a ConfigError
naming the key, like the rest of the settings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bot.config_values import ConfigError, _decimal, _table

BREAKER_MODES = ("off", "alert", "pause")
URL = re.compile(r"^https?://[^/\s]+")


@dataclass(frozen=True)
class LiteLLMEnforcer:
    url: str  # the proxy's base URL, e.g. http://litellm:4000 (the master key: LITELLM_MASTER_KEY)


@dataclass(frozen=True)
class OpenAIEnforcer:
    projects: dict[str, str] = field(default_factory=dict)  # project id -> team name (SPEC 13)
    amounts: dict[str, Decimal] = field(default_factory=dict)  # project id -> a fixed monthly USD (no team)


@dataclass(frozen=True)
class EnforceSettings:
    litellm: LiteLLMEnforcer | None = None
    openai: OpenAIEnforcer | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name in ("litellm", "openai") if getattr(self, name) is not None)


@dataclass(frozen=True)
class BreakerSettings:
    mode: str = "off"
    window_minutes: int = 15
    min_usd: Decimal = Decimal(20)
    factor: Decimal = Decimal(5)
    auto_resume_minutes: int = 0
    self_resume: bool = False

    @property
    def on(self) -> bool:
        return self.mode != "off"


def parse_enforce(raw: Any) -> EnforceSettings:
    table = _table("enforce", raw)
    for key in table:
        if key not in ("litellm", "openai"):
            raise ConfigError(f"enforce.{key}: unknown enforcer (known: litellm, openai)")
    litellm = openai = None
    if "litellm" in table:
        entry = _table("enforce.litellm", table["litellm"])
        for key in entry:
            if key != "url":
                raise ConfigError(f"enforce.litellm.{key}: unknown setting (known: url)")
        url = entry.get("url")
        if not isinstance(url, str) or not URL.match(url):
            raise ConfigError("enforce.litellm.url: must be the proxy's http(s) URL, like \"http://litellm:4000\"")
        litellm = LiteLLMEnforcer(url=url.rstrip("/"))
    if "openai" in table:
        entry = _table("enforce.openai", table["openai"])
        for key in entry:
            if key not in ("projects", "amounts"):
                raise ConfigError(f"enforce.openai.{key}: unknown setting (known: projects, amounts)")
        projects = _table("enforce.openai.projects", entry.get("projects", {}))
        for project, team in projects.items():
            if not isinstance(team, str) or not team:
                raise ConfigError(f"enforce.openai.projects.{project}: must be a team name from [teams]")
        amounts = {str(k): _decimal(f"enforce.openai.amounts.{k}", v)
                   for k, v in _table("enforce.openai.amounts", entry.get("amounts", {})).items()}
        openai = OpenAIEnforcer(projects={str(k): v for k, v in projects.items()}, amounts=amounts)
    return EnforceSettings(litellm=litellm, openai=openai)


def parse_breaker(raw: Any) -> BreakerSettings:
    table = _table("breaker", raw)
    known = ("mode", "window_minutes", "min_usd", "factor", "auto_resume_minutes", "self_resume")
    for key in table:
        if key not in known:
            raise ConfigError(f"breaker.{key}: unknown setting (known: {', '.join(known)})")
    values: dict[str, Any] = {}
    if "mode" in table:
        if table["mode"] not in BREAKER_MODES:
            raise ConfigError(f"breaker.mode: must be one of {', '.join(BREAKER_MODES)}")
        values["mode"] = table["mode"]
    for key, low, high in (("window_minutes", 1, 1440), ("auto_resume_minutes", 0, 10_080)):
        if key in table:
            value = table[key]
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ConfigError(f"breaker.{key}: must be a whole number of minutes from {low} to {high}")
            values[key] = value
    for key in ("min_usd", "factor"):
        if key in table:
            value = _decimal(f"breaker.{key}", table[key])
            if value <= 0:
                raise ConfigError(f"breaker.{key}: must be above 0")
            values[key] = value
    if "self_resume" in table:
        if not isinstance(table["self_resume"], bool):
            raise ConfigError("breaker.self_resume: must be true or false")
        values["self_resume"] = table["self_resume"]
    return BreakerSettings(**values)

"""Checks of single setting values, each raising a `ConfigError` that names the key (bot/config.py)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


class ConfigError(Exception):
    """A bad setting; the message is one line naming the key."""


def _check_whsec(key: str, value: str) -> None:
    import base64
    import binascii

    body = value.removeprefix("whsec_")
    try:
        raw = base64.b64decode(body + "==", validate=False)
    except (binascii.Error, ValueError):
        raw = b""
    if not value.startswith("whsec_") or len(raw) < 16:
        raise ConfigError(f"{key}: must be a Standard Webhooks secret: whsec_ followed by base64 of 16+ bytes")


def _url(env: dict[str, str], key: str, default: str | None, *, trailing_slash: bool = False) -> str | None:
    value = env.get(key, default)
    if value is None:
        return None
    if not re.match(r"^https?://[^/\s]+", value):
        raise ConfigError(f"{key}: must be an http(s) URL (got {value!r})")
    if trailing_slash and not value.endswith("/"):
        value += "/"
    return value


def _port(value: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ConfigError(f"PORT: must be a TCP port number from 1 to 65535 (got {value!r})")
    return int(value)


def _zone(value: Any) -> ZoneInfo:
    if not isinstance(value, str):
        raise ConfigError("timezone: must be an IANA time zone name like \"America/New_York\"")
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"timezone: unknown time zone {value!r} (use an IANA name like \"Europe/Berlin\")") from None


def _table(key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: must be a table")
    return value


def _choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"{key}: must be one of {', '.join(repr(c) for c in choices)} (got {value!r})")
    return value


def _user_id(key: str, value: Any) -> str:
    if not isinstance(value, str) or not SLACK_USER_ID.match(value):
        raise ConfigError(f"{key}: must be a Slack user id like U0ALICE (got {value!r})")
    return value


def _user_ids(key: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ConfigError(f"{key}: must be a list of Slack user ids")
    return [_user_id(f"{key}[{i}]", v) for i, v in enumerate(value)]


def _decimal(key: str, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"{key}: must be a number")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ConfigError(f"{key}: must be a number (got {value!r})") from None
    if not number.is_finite():
        raise ConfigError(f"{key}: must be a finite number")
    return number


def _money(key: str, value: Any) -> Decimal:
    number = _decimal(key, value)
    if number < 0:
        raise ConfigError(f"{key}: must not be negative")
    return number

"""Configuration (SPEC 3): the environment, `.env` and the TOML file, validated at start."""

from __future__ import annotations

import base64
import os
from datetime import time
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.config import ConfigError, DigestConfig, ModelPrice, load_settings

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123").decode()

SPEC_EXAMPLE = """
timezone = "America/New_York"     # the organisation's day and month boundaries
admins = ["U0ADMIN"]               # Slack user ids with admin rights (workspace admins too)
leaderboard = "names"              # default privacy for /tokens top and digests: "names" | "anonymous" | "off"

[budgets]
default_monthly_usd = 200          # every user's monthly budget unless overridden
alert_thresholds = [0.5, 0.8, 1.0] # DM the user once per threshold per month
[budgets.users]                    # per-user monthly budgets
"U0ALICE" = 500

[approvals]
default_approvers = ["U0FINANCE"]  # when no approver is known for a requester
expire_after_hours = 72
remind_after_hours = 24
max_request_usd = 10000
auto_approve_under_usd = 0         # 0: every request needs a person
manager_field = "Manager"          # a Slack custom profile field of type user, if the workspace has one
[approvals.approver]               # requester -> approver
"U0ALICE" = "U0BOB"

[identities]                       # external ids (API keys, gateway users) -> Slack user id
"key_live_abc" = "U0ALICE"

[[digests]]
channel = "C0AISPEND"
time = "09:00"                     # local time in `timezone`
period = "day"                     # "day" (covers yesterday) or "week" (posted Mondays)
top = 10
leaderboard = "names"              # overrides the top-level default for this digest

[pricing.models."acme-finetune-1"] # prices per million tokens, override or add models
input = 3.0
cached_input = 0.3
output = 12.0
"""


def load_toml(tmp_path: Path, text: str, **env: str):
    path = tmp_path / "tokenbot.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(environ={"TOKENBOT_CONFIG": str(path), **env}, read_dotenv=False)


def config_error(tmp_path: Path, text: str | None = None, **env: str) -> str:
    with pytest.raises(ConfigError) as caught:
        if text is None:
            load_settings(environ=env, read_dotenv=False)
        else:
            load_toml(tmp_path, text, **env)
    message = str(caught.value)
    assert "\n" not in message, message
    return message


def test_spec_example_parses_into_the_right_values(tmp_path):
    s = load_toml(tmp_path, SPEC_EXAMPLE)
    assert s.config_path == tmp_path / "tokenbot.toml"
    assert s.timezone == ZoneInfo("America/New_York")
    assert s.admins == ("U0ADMIN",)
    assert s.leaderboard == "names"
    assert s.default_monthly_usd == Decimal(200)
    assert s.alert_thresholds == (Decimal("0.5"), Decimal("0.8"), Decimal("1.0"))
    assert s.user_budgets == {"U0ALICE": Decimal(500)}
    assert s.default_approvers == ("U0FINANCE",)
    assert (s.expire_after_hours, s.remind_after_hours) == (72, 24)
    assert s.max_request_usd == Decimal(10000)
    assert s.auto_approve_under_usd == Decimal(0)
    assert s.manager_field == "Manager"
    assert s.approvers == {"U0ALICE": "U0BOB"}
    assert s.identities == {"key_live_abc": "U0ALICE"}
    assert s.digests == (DigestConfig(channel="C0AISPEND", time=time(9, 0), period="day", top=10, leaderboard="names"),)
    assert s.model_prices == {
        "acme-finetune-1": ModelPrice(input=Decimal("3.0"), output=Decimal("12.0"), cached_input=Decimal("0.3"))
    }
    # TOML floats become the decimals that were written, not binary approximations
    price = s.model_prices["acme-finetune-1"].cached_input
    assert isinstance(price, Decimal) and price == Decimal("0.3") and str(price) == "0.3"


def test_defaults_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load_settings(environ={}, read_dotenv=False)
    assert s.config_path is None
    assert s.database_url == "sqlite+aiosqlite:///./tokenbot.db"
    assert (s.host, s.port) == ("0.0.0.0", 3000)
    assert s.slack_api_url == "https://slack.com/api/"
    assert s.default_monthly_usd == Decimal(200)
    assert s.api_token is None and s.usage_webhook_secret is None


def test_tokenbot_toml_in_the_working_directory_is_read(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tokenbot.toml").write_text('timezone = "Europe/Berlin"\n')
    s = load_settings(environ={}, read_dotenv=False)
    assert s.timezone == ZoneInfo("Europe/Berlin")


def test_environment_values(tmp_path):
    s = load_settings(environ={
        "SLACK_BOT_TOKEN": "xoxb-1-2-3",
        "SLACK_APP_TOKEN": "xapp-1-A-3",
        "SLACK_API_URL": "http://127.0.0.1:9/api",
        "PORT": "8080",
        "HOST": "127.0.0.1",
        "USAGE_WEBHOOK_SECRET": SECRET,
        "USAGE_WEBHOOK_TOKEN": "tok",
        "TOKENBOT_API_TOKEN": "api",
        "LIMITS_WEBHOOK_URL": "https://gateway.example/limits",
        "LIMITS_WEBHOOK_SECRET": SECRET,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/x.db",
    }, read_dotenv=False)
    assert s.port == 8080 and s.host == "127.0.0.1"
    assert s.slack_api_url == "http://127.0.0.1:9/api/"
    assert s.limits_webhook_url == "https://gateway.example/limits"
    assert s.api_token == "api" and s.usage_webhook_token == "tok"


@pytest.mark.parametrize("url", [
    "postgres://user:pw@db.example:5432/tokenbot",
    "postgresql://user:pw@db.example:5432/tokenbot",
])
def test_postgres_urls_are_normalised(url):
    s = load_settings(environ={"DATABASE_URL": url}, read_dotenv=False)
    assert s.database_url == "postgresql+asyncpg://user:pw@db.example:5432/tokenbot"


@pytest.mark.parametrize(("text", "key"), [
    ('timezone = "Mars/Olympus_Mons"', "timezone"),
    ('timezone = 5', "timezone"),
    ('colour = "red"', "colour"),
    ('leaderboard = "public"', "leaderboard"),
    ("[budgets]\ndefault_monthly_usd = -5", "budgets.default_monthly_usd"),
    ('[budgets.users]\n"U0ALICE" = -1', "budgets.users.U0ALICE"),
    ('[budgets.users]\n"alice" = 10', "budgets.users.alice"),
    ("[budgets]\nalert_thresholds = 0.8", "budgets.alert_thresholds"),
    ("[budgets]\nalert_thresholds = [0.5, -1]", "budgets.alert_thresholds[1]"),
    ("[budgets]\nmonthly = 5", "budgets.monthly"),
    ('[approvals.approver]\n"U0ALICE" = "U0ALICE"', "approvals.approver.U0ALICE"),
    ("[approvals]\nexpire_after_hours = 0", "approvals.expire_after_hours"),
    ("[approvals]\nremind_after = 5", "approvals.remind_after"),
    ('admins = ["alice@acme.com"]', "admins[0]"),
    ('admins = "U0ADMIN"', "admins"),
    ('[identities]\n"key_1" = "bob@acme.com"', "identities.key_1"),
    ('[[digests]]\nchannel = "C0AISPEND"\ntime = "9am"', "digests[0].time"),
    ('[[digests]]\nchannel = "C0AISPEND"\nperiod = "month"', "digests[0].period"),
    ('[[digests]]\nchannel = "#ai-spend"', "digests[0].channel"),
    ('[[digests]]\nchannel = "C0AISPEND"\ntop = 0', "digests[0].top"),
    ('[pricing.models."acme-1"]\ninput = 3.0', "pricing.models.acme-1"),
    ('[pricing.models."acme-1"]\ninput = 3.0\noutput = "lots"', "pricing.models.acme-1.output"),
    ('[pricing.models."acme-1"]\ninput = 3.0\noutput = 1\ncache_read = 1', "pricing.models.acme-1.cache_read"),
    ('[pricing.model."acme-1"]\ninput = 3.0\noutput = 12.0', "pricing.model"),
])
def test_bad_file_values_name_their_key(tmp_path, text, key):
    message = config_error(tmp_path, text)
    assert message.startswith(f"{key}:"), message


@pytest.mark.parametrize(("env", "key"), [
    ({"PORT": "http"}, "PORT"),
    ({"PORT": "70000"}, "PORT"),
    ({"DATABASE_URL": "mysql://root@localhost/tokenbot"}, "DATABASE_URL"),
    ({"SLACK_BOT_TOKEN": "xoxp-user-token"}, "SLACK_BOT_TOKEN"),
    ({"SLACK_APP_TOKEN": "xoxb-1"}, "SLACK_APP_TOKEN"),
    ({"USAGE_WEBHOOK_SECRET": "plain-shared-secret-of-some-length"}, "USAGE_WEBHOOK_SECRET"),
    ({"USAGE_WEBHOOK_SECRET": "whsec_c2hvcnQ="}, "USAGE_WEBHOOK_SECRET"),  # 5 bytes: too short
    ({"LIMITS_WEBHOOK_URL": "https://gateway.example/limits"}, "LIMITS_WEBHOOK_SECRET"),
    ({"LIMITS_WEBHOOK_URL": "gateway.example/limits", "LIMITS_WEBHOOK_SECRET": SECRET}, "LIMITS_WEBHOOK_URL"),
    ({"SLACK_API_URL": "slack.com/api"}, "SLACK_API_URL"),
    ({"TOKENBOT_CONFIG": "/nonexistent/tokenbot.toml"}, "TOKENBOT_CONFIG"),
])
def test_bad_environment_values_name_their_key(tmp_path, env, key):
    message = config_error(tmp_path, None, **env)
    assert message.startswith(f"{key}:"), message
    if key == "LIMITS_WEBHOOK_SECRET":
        assert "LIMITS_WEBHOOK_URL" in message


def test_database_url_message_does_not_leak_the_password(tmp_path):
    message = config_error(tmp_path, None, DATABASE_URL="mysql://root:hunter2@localhost/tokenbot")
    assert "hunter2" not in message


def test_malformed_toml_names_the_file(tmp_path):
    message = config_error(tmp_path, "timezone = \n[budgets\n")
    path = str(tmp_path / "tokenbot.toml")
    assert message.startswith(path), message
    assert "TOML" in message


def test_config_file_that_is_not_utf8_is_a_config_error(tmp_path):
    path = tmp_path / "tokenbot.toml"
    path.write_bytes(b'timezone = "Europe/Z\xfcrich"\n')  # Latin-1, not UTF-8
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"TOKENBOT_CONFIG": str(path)}, read_dotenv=False)
    assert str(caught.value).startswith(str(path)) and "\n" not in str(caught.value)


def test_serve_requires_slack_credentials():
    s = load_settings(environ={}, read_dotenv=False)
    with pytest.raises(ConfigError, match=r"^SLACK_BOT_TOKEN:"):
        s.require_slack(http_mode=True)
    s = load_settings(environ={"SLACK_BOT_TOKEN": "xoxb-1"}, read_dotenv=False)
    with pytest.raises(ConfigError, match=r"^SLACK_SIGNING_SECRET:"):
        s.require_slack(http_mode=True)
    s.require_slack(http_mode=False)  # Socket Mode needs no signing secret


DOTENV_KEYS = ("TOKENBOT_API_TOKEN", "PORT", "DATABASE_URL", "TOKENBOT_CONFIG", "USAGE_WEBHOOK_TOKEN")


def test_dotenv_in_the_working_directory_is_read(tmp_path, monkeypatch):
    for key in DOTENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "team.toml").write_text('timezone = "Asia/Tokyo"\n')
    (tmp_path / ".env").write_text(
        "TOKENBOT_API_TOKEN=from-dotenv\n"
        "PORT=4321\n"
        "DATABASE_URL=postgres://u@db.example/tb\n"
        "TOKENBOT_CONFIG=team.toml\n"
    )
    monkeypatch.setenv("USAGE_WEBHOOK_TOKEN", "from-environment")
    try:
        s = load_settings()
    finally:  # load_dotenv wrote into os.environ: take out what it added (monkeypatch restores the rest)
        for key in DOTENV_KEYS:
            os.environ.pop(key, None)
    assert s.api_token == "from-dotenv"
    assert s.port == 4321
    assert s.database_url == "postgresql+asyncpg://u@db.example/tb"
    assert s.timezone == ZoneInfo("Asia/Tokyo")
    assert s.usage_webhook_token == "from-environment"


def test_environment_wins_over_dotenv(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("TOKENBOT_API_TOKEN=from-dotenv\n")
    monkeypatch.setenv("TOKENBOT_API_TOKEN", "from-environment")
    s = load_settings()
    assert s.api_token == "from-environment"

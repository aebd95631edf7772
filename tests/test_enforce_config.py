"""`[enforce.*]` and `[breaker]` settings, the card's "where limits are enforced", and
`tokenbot enforce status` as a real process."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from bot.card_builder import limits_enforced
from bot.config import ConfigError, Settings, parse_toml_text
from bot.enforce_config import BreakerSettings, EnforceSettings, LiteLLMEnforcer
from tests.test_cli import tokenbot


def test_enforce_and_breaker_parse():
    values = parse_toml_text('''
[enforce.litellm]
url = "http://litellm:4000/"
[enforce.openai]
projects = { "proj_abc" = "platform" }
amounts = { "proj_x" = 250 }
[breaker]
mode = "pause"
window_minutes = 10
min_usd = 15
factor = 4
auto_resume_minutes = 60
self_resume = true
''')
    enforce: EnforceSettings = values["enforce"]
    assert enforce.litellm == LiteLLMEnforcer(url="http://litellm:4000")
    assert enforce.openai.projects == {"proj_abc": "platform"} and enforce.openai.amounts == {"proj_x": Decimal(250)}
    assert enforce.names == ("litellm", "openai")
    assert values["breaker"] == BreakerSettings("pause", 10, Decimal(15), Decimal(4), 60, True)


@pytest.mark.parametrize(("text", "message"), [
    ('[enforce.litellm]\nurl = "litellm:4000"', "enforce.litellm.url: must be the proxy's http(s) URL"),
    ('[enforce.kong]\nurl = "http://x"', "enforce.kong: unknown enforcer"),
    ('[breaker]\nmode = "panic"', "breaker.mode: must be one of off, alert, pause"),
    ('[breaker]\nwindow_minutes = 0', "breaker.window_minutes: must be a whole number of minutes from 1 to 1440"),
    ('[breaker]\nfactor = -1', "breaker.factor: must be above 0"),
    ('[breaker]\nself_resume = "yes"', "breaker.self_resume: must be true or false"),
])
def test_bad_settings_are_one_line(text, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_toml_text(text)


def test_limits_enforced_says_where():
    plain = Settings()
    assert limits_enforced(plain) == ""
    assert limits_enforced(replace(plain, api_token="t")) == "Gateways that check tokenbot refuse"
    proxy = replace(plain, enforce=EnforceSettings(litellm=LiteLLMEnforcer(url="http://litellm:4000")))
    assert limits_enforced(proxy) == "The LiteLLM proxy refuses"


def test_enforce_status_command(tmp_path):
    (tmp_path / "tokenbot.toml").write_text('[enforce.litellm]\nurl = "http://127.0.0.1:9"\n')
    done = tokenbot("enforce", "status", cwd=tmp_path, DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/t.db")
    assert done.returncode == 0, done.stderr
    assert "LiteLLM proxy: not pushed yet, nothing waiting" in done.stdout and "http://127.0.0.1:9" in done.stdout

"""`[sources.*]`, `[reconcile]`, `leaderboard.show_output` and the admin keys (SPEC 10)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.config import ConfigError, load_settings


def settings(tmp_path, toml: str, **env):
    path = tmp_path / "tokenbot.toml"
    path.write_text(toml)
    return load_settings({"TOKENBOT_CONFIG": str(path), **env}, read_dotenv=False)


def test_defaults_and_environment(tmp_path):
    s = settings(tmp_path, "", OPENAI_ADMIN_KEY="sk-admin-x", ANTHROPIC_ADMIN_KEY="sk-ant-admin-y",
                 ANTHROPIC_BASE_URL="http://127.0.0.1:9/")
    o, a = s.sources.openai, s.sources.anthropic
    assert (o.enabled, o.count, o.every_minutes, o.backfill_days, o.url) == (True, "all", 60, 31,
                                                                            "https://api.openai.com/v1")
    assert (a.enabled, a.count, a.claude_code, a.url) == (True, "none", True, "http://127.0.0.1:9")
    assert s.sources.tolerance_pct == Decimal(1) and s.sources.show_output is False
    assert not settings(tmp_path, "").sources.enabled()


def test_the_tables_of_spec_10(tmp_path):
    s = settings(tmp_path, '[sources.openai]\nevery_minutes = 30\ncount = "none"\nbackfill_days = 7\n'
                           '[sources.anthropic]\ncount = "all"\nclaude_code = false\n[reconcile]\ntolerance_pct = 2.5\n'
                           '[leaderboard]\nprivacy = "anonymous"\nshow_output = true\n')
    assert (s.sources.openai.every_minutes, s.sources.openai.count, s.sources.openai.backfill_days) == (30, "none", 7)
    assert (s.sources.anthropic.count, s.sources.anthropic.claude_code) == ("all", False)
    assert s.sources.tolerance_pct == Decimal("2.5")
    assert s.leaderboard == "anonymous" and s.sources.show_output is True


@pytest.mark.parametrize(("toml", "env", "message"), [
    ('[sources.openai]\ncount = "some"\n', {}, 'sources.openai.count: must be "all" or "none"'),
    ("[sources.openai]\nevery_minutes = 0\n", {}, "sources.openai.every_minutes"),
    ("[sources.mistral]\n", {}, "sources.mistral: unknown source"),
    ("[sources.openai]\nclaude_code = true\n", {}, "sources.openai.claude_code: unknown setting"),
    ("[reconcile]\ntolerance_pct = -1\n", {}, "reconcile.tolerance_pct"),
    ("[leaderboard]\nshow_output = 1\n", {}, "leaderboard.show_output"),
    ("", {"ANTHROPIC_BASE_URL": "api.anthropic.com"}, "ANTHROPIC_BASE_URL: must be an http(s) URL"),
])
def test_one_clear_line_for_bad_values(tmp_path, toml, env, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        settings(tmp_path, toml, **env)

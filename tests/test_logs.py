"""Logs (SPEC 14): JSON lines when LOG_FORMAT=json, one line naming a bad LOG_FORMAT, and the
libraries that narrate routine work (APScheduler, Alembic) held to WARNING."""

from __future__ import annotations

import json
import logging

from bot.logs import configure_logging
from tests.test_cli import one_line, tokenbot


def test_json_log_lines_from_a_real_command(tmp_path):
    db = tmp_path / "t.db"
    result = tokenbot("-v", "db", "upgrade", cwd=tmp_path, LOG_FORMAT="json",
                      DATABASE_URL=f"sqlite+aiosqlite:///{db}")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert lines, "verbose db upgrade logs Alembic's steps"
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert any(line["logger"].startswith("alembic") and "0001" in line["message"] for line in lines)


def test_an_unknown_log_format_is_one_line_and_exit_2(tmp_path):
    result = tokenbot("db", "upgrade", cwd=tmp_path, LOG_FORMAT="yaml",
                      DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 't.db'}")
    assert result.returncode == 2
    assert "LOG_FORMAT" in one_line(result.stderr)


def test_scheduler_chatter_is_held_to_warning_and_exceptions_stay_in_the_json_line(capsys):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging(level=logging.INFO, log_format="json")
        logging.getLogger("apscheduler.executors.default").info("Running job x")
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("tokenbot").exception("push failed")
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
        assert [line["message"] for line in lines] == ["push failed"]
        assert "RuntimeError: boom" in lines[0]["exception"]
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        logging.getLogger("apscheduler").setLevel(logging.NOTSET)

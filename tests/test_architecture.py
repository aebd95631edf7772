"""The shape of the code: imports run handlers -> bot -> storage, without cycles; bot/ modules stay small.

Every module under bot/, handlers/ and storage/ is parsed with `ast`; every import counts,
including imports inside functions and under `if TYPE_CHECKING` (an import that only dodges
a cycle at run time is still a cycle for the reader). Run it alone with

    .venv/bin/pytest tests/test_architecture.py -q

and `python -m tests.test_architecture` prints the graph's cycles and upward imports.
"""

from __future__ import annotations

import ast
import sys
from decimal import Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("storage", "bot", "handlers")  # lowest first: a layer imports only itself and those below
COMPOSITION_ROOTS = {"bot.app"}  # the one bot/ module that wires handlers/ to the rules
MAX_BOT_LINES = 400


def project_modules() -> dict[str, Path]:
    modules = {}
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `name` imports (anywhere in the file), resolved to modules, not names in them."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def module_for(dotted: str) -> str | None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import sub` imports the submodule; `from mod import name` the module
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            resolved = module_for(target)
            if resolved is not None and resolved != name:
                found.add(resolved)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Imports from a lower layer into a higher one (bot.app may import handlers)."""
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    wrong = []
    for name, targets in sorted(graph.items()):
        for target in sorted(targets):
            if rank[target.split(".")[0]] > rank[name.split(".")[0]] and name not in COMPOSITION_ROOTS:
                wrong.append(f"{name} imports {target}")
    return wrong


def long_bot_modules() -> list[str]:
    out = []
    for path in sorted((ROOT / "bot").rglob("*.py")):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_BOT_LINES:
            out.append(f"{path.relative_to(ROOT)}: {lines} lines")
    return out


def test_the_graph_sees_every_kind_of_import(tmp_path):
    """The parser itself: function-level, relative and `from pkg import module` imports all count."""
    modules = {"bot": tmp_path, "bot.a": tmp_path, "bot.b": tmp_path, "bot.pkg": tmp_path,
               "bot.pkg.c": tmp_path, "storage.d": tmp_path}
    source = tmp_path / "a.py"
    source.write_text("import os\nfrom bot import b\n\ndef f():\n    from bot.pkg import c\n"
                      "    import storage.d.thing\n    from . import pkg\n")
    assert imports_of("bot.a", source, modules) == {"bot.b", "bot.pkg.c", "storage.d", "bot.pkg"}
    assert cycles({"x": {"y"}, "y": {"z"}, "z": {"x"}, "w": {"x"}}) == [["x", "y", "z"]]
    assert upward_imports({"storage.s": {"bot.b"}, "bot.b": {"handlers.h"}, "bot.app": {"handlers.h"},
                           "handlers.h": {"bot.b"}}) == ["bot.b imports handlers.h", "storage.s imports bot.b"]


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_imports_run_handlers_to_bot_to_storage():
    assert upward_imports(import_graph()) == []


def test_no_bot_module_over_400_lines():
    assert long_bot_modules() == []


if __name__ == "__main__":  # pragma: no cover
    graph = import_graph()
    problems = [f"cycle: {' -> '.join(c)}" for c in cycles(graph)] + upward_imports(graph) + long_bot_modules()
    print("\n".join(problems) or "no cycles, no upward imports, no long bot/ modules")
    sys.exit(1 if problems else 0)


# -- the composition root ------------------------------------------------------------------------------

async def test_the_composition_root_lists_words_sections_jobs_and_hooks(settings):
    """What exists comes from bot/wiring.py alone: no Bolt app, no listener registered, and
    `/tokens request` and `/tokens admin audit` still answer."""
    from bot.commands import run_command
    from bot.views.help import HelpView, Notice
    from bot.wiring import build_services, home_sections, scheduled_jobs

    services = build_services(settings, with_slack=False)
    try:
        assert set(services.tokens_words) == {"request", "admin audit", "admin reconcile", "admin status",
                                              "admin breaker", "team", "admin team", "request team"}
        assert services.home_sections == home_sections()
        assert len(services.ingestor.after_ingest) == 2  # budget alerts, team budget alerts
        assert {"approvals-sweep", "digests:sweep", "digests:startup-sweep"} <= {s.id for s in
                                                                                scheduled_jobs(services)}
        answer = await run_command(services, "U0ADA", "request")
        assert isinstance(answer, Notice) and "/tokens request &lt;amount&gt;" in answer.text
        assert isinstance(await run_command(services, "U0ADA", "admin audit"), Notice)  # refused: not an admin
        services.tokens_words.clear()
        assert (await run_command(services, "U0ADA", "request 50")) == HelpView(unknown="request")
    finally:
        await services.close()


def test_one_amount_grammar_for_commands_and_forms():
    """`/tokens admin set-budget` and the request forms read amounts with one function and one set of words."""
    from bot.amounts import AmountError, parse_amount
    from bot.approvals.service import parse_request_amount
    from bot.config import Settings

    settings = Settings()
    for bad in ("12.345", "abc", "1,00", "-5", "5 USD"):
        with pytest.raises(AmountError) as command_error:
            parse_amount(bad)
        with pytest.raises(AmountError) as form_error:
            parse_request_amount(bad, settings)
        assert str(command_error.value).split(";")[1] == str(form_error.value).split(";")[1]
    assert parse_request_amount("$1,250.50", settings) == parse_amount("$1,250.50") == Decimal("1250.50")
    with pytest.raises(AmountError, match="more than \\$0"):
        parse_request_amount("0", settings)
    assert parse_amount("0") == 0

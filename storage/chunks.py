"""How many keys go into one `IN (...)` list: the one chunk size of every such query."""

from __future__ import annotations

from collections.abc import Iterable

IN_CHUNK = 500  # well under SQLite's bound-parameter limit and PostgreSQL's comfortable plan sizes


def chunked(keys: Iterable[str]) -> list[list[str]]:
    """The distinct keys, sorted, in lists of at most IN_CHUNK."""
    ordered = sorted(set(keys))
    return [ordered[i : i + IN_CHUNK] for i in range(0, len(ordered), IN_CHUNK)]

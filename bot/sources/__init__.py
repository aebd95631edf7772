"""Sender payloads -> native usage event dicts (SPEC 5).

Each source turns a request body into a list of plain dicts in the native event
format; `bot.usage` validates, prices and stores them, so every source shares one
set of rules.
"""


class BodyError(ValueError):
    """The request body as a whole is unusable (not JSON, not NDJSON, wrong shape)."""

"""Helpers shared by the digest tests: usage events at local times, ingest, PNG inspection."""

from __future__ import annotations

import struct
import zlib
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

TZ = ZoneInfo("America/New_York")
CHANNEL = "C0AISPEND"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def local(year: int, month: int, day: int, hour: int = 12, minute: int = 0, *, fold: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=TZ, fold=fold)


def ev(n: Any, when: datetime, user: str = "U0ALICE", *, model: str = "gpt-4o", cost: str | None = "1.00",
       input_tokens: int = 1000, output_tokens: int = 500, **extra: Any) -> dict[str, Any]:
    """A native usage event at `when`, with an exact sent cost (None: priced by the bot)."""
    event = {"id": f"e-{n}", "timestamp": when.isoformat(), "user": user, "model": model,
             "input_tokens": input_tokens, "output_tokens": output_tokens, **extra}
    if cost is not None:
        event["cost_usd"] = cost
    return event


async def ingest(services, events: list[dict[str, Any]]) -> None:
    """Through the one real ingest path; every event must be accepted."""
    for start in range(0, len(events), 5000):
        result = await services.ingestor.ingest(events[start : start + 5000], source="test")
        assert not result.rejected, result.rejected[:3]
    await services.ingestor.writer.settle()  # rollups trail events by up to a second


def png_info(data: bytes) -> tuple[int, int, dict[str, str]]:
    """(width, height, text chunks) of a PNG, checking its structure and every chunk's CRC."""
    assert data.startswith(PNG_SIGNATURE), "not a PNG"
    pos, width, height, texts, chunks = 8, 0, 0, {}, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        chunks.append(kind)
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            texts[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"iTXt":
            key, _, rest = body.partition(b"\0")
            texts[key.decode("latin-1")] = rest[2:].split(b"\0", 2)[-1].decode()
        pos += 12 + length
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND" and b"IDAT" in chunks
    return width, height, texts


async def runs(services) -> list:
    """Every digest_runs row (ORM objects: dates and UTC datetimes on both backends)."""
    from sqlalchemy import select

    from storage.models import DigestRun

    async with services.db.session() as session:
        query = select(DigestRun).order_by(DigestRun.channel, DigestRun.period, DigestRun.period_start)
        return list(await session.scalars(query))

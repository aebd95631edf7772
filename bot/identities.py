"""Who spent it: Slack user id, email or external id -> the person (`user_key`).

Order: a Slack user id is itself; `[identities]` in config; a link stored in the
database (`/tokens admin link`, or an email Slack resolved); else the raw id, kept as
unlinked spend until someone links it.

Ingest never waits on Slack. An email seen for the first time is queued for
`users.lookupByEmail` in the background; when Slack answers, the email is linked and its
past events are re-attributed, so the person's totals are right from then on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta

from sqlalchemy import select

from bot.clock import Clock
from bot.config import SLACK_USER_ID, Settings
from storage.chunks import chunked
from storage.db import Database
from storage.models import Identity
from storage.rewrites import reattribute

log = logging.getLogger(__name__)

# How long a subject's link is trusted when resolving a batch. Links another process makes
# meanwhile still reach every stored batch: the background re-check after each commit reads
# the stored links and moves what went in under the old key (`_recheck_links`).
CACHE_SECONDS = 600.0
RETRY_UNKNOWN_EMAIL = timedelta(hours=24)
RECHECK_SECONDS = 0.05

EmailLookup = Callable[[str], Awaitable[str | None]]


def is_slack_user_id(value: str) -> bool:
    known = _SLACK_IDS.get(value)
    if known is None:
        known = bool(SLACK_USER_ID.match(value))
        if len(_SLACK_IDS) < 50_000:  # senders' subjects: asked twice per batch each, a regex every time before
            _SLACK_IDS[value] = known
    return known


_SLACK_IDS: dict[str, bool] = {}


def looks_like_email(value: str) -> bool:
    local, at, domain = value.partition("@")
    return bool(at and local and "." in domain)


class IdentityResolver:
    def __init__(
        self, db: Database, settings: Settings, clock: Clock, lookup_email: EmailLookup | None = None
    ) -> None:
        self.db = db
        self.clock = clock
        self.config_links = dict(settings.identities)
        self.lookup_email = lookup_email
        self.teams = None  # bot.teams.assign.TeamDirectory (bot/wiring.py)
        self._cache: dict[str, tuple[str | None, float]] = {}
        self._pending_lookups: set[str] = set()
        self._to_look_up: set[str] = set()  # unknown emails, looked up once their batch is stored
        self._queue: asyncio.Queue[str] | None = None
        self._worker: asyncio.Task | None = None
        self._recheck: set[tuple[str, str]] = set()  # (subject, key its rows went in under) to check
        self._rechecker: asyncio.Task | None = None

    async def resolve_many(self, subjects: Iterable[str]) -> dict[str, str]:
        """subject -> user_key for a batch, with one database read for cache misses."""
        now = time.monotonic()
        result: dict[str, str] = {}
        misses: list[str] = []
        for subject in set(subjects):
            if is_slack_user_id(subject):
                result[subject] = subject
            elif subject in self.config_links:
                result[subject] = self.config_links[subject]
            else:
                cached = self._cache.get(subject)
                if cached is not None and cached[1] > now:
                    result[subject] = cached[0] or subject
                else:
                    misses.append(subject)
        if misses:
            found = await self._load(misses)
            expires = now + CACHE_SECONDS
            for subject in misses:
                identity = found.get(subject)
                linked = identity.slack_user_id if identity else None
                self._cache[subject] = (linked, expires)
                result[subject] = linked or subject
                if identity is None and looks_like_email(subject):
                    self._to_look_up.add(subject)
                elif identity is not None and identity.slack_user_id is None and identity.source == "email":
                    if identity.checked_at + RETRY_UNKNOWN_EMAIL < self.clock.now():
                        self._to_look_up.add(subject)
        return result

    async def after_commit(self, used: dict[str, str]) -> None:
        """Once a batch is stored: start the email lookups it needs, and have any subject that
        was linked while the batch was in flight fixed up (its rows went in under the old key).

        The fix-up check reads the stored links, so it runs in the background, one query for
        every batch stored meanwhile rather than one per request (`drain` waits for it).
        """
        external = {s: k for s, k in used.items() if not is_slack_user_id(s) and s not in self.config_links}
        if external:
            for subject, user_key in external.items():
                self._recheck.add((subject, user_key))
            if self._rechecker is None or self._rechecker.done():
                self._rechecker = asyncio.get_running_loop().create_task(self._recheck_links(), name="link-recheck")
        for subject, user_key in used.items():
            current = self._cache.get(subject)
            if current is not None and current[0] and current[0] != user_key:
                async with self.db.write() as session:
                    await reattribute(session, subject, current[0], self.team_of(current[0]))
        for email in [e for e in self._to_look_up if e in used]:
            self._to_look_up.discard(email)
            self._queue_lookup(email)

    async def _recheck_links(self) -> None:
        # Another process may have linked a subject this process still had cached (up to
        # CACHE_SECONDS): the stored link is the truth, or that spend stays misattributed for good.
        while self._recheck:
            await asyncio.sleep(RECHECK_SECONDS)  # gather the batches stored meanwhile
            pairs, self._recheck = self._recheck, set()
            try:
                stored = await self._load(sorted({s for s, _ in pairs}))
                expires = time.monotonic() + CACHE_SECONDS
                for subject, user_key in sorted(pairs):
                    identity = stored.get(subject)
                    linked = identity.slack_user_id if identity is not None else None
                    if identity is not None or not looks_like_email(subject):
                        self._cache[subject] = (linked, expires)  # just read: trusted for another while
                    if (identity is not None and linked is None and identity.source == "email"
                            and identity.checked_at + RETRY_UNKNOWN_EMAIL < self.clock.now()):
                        self._queue_lookup(subject)  # an email Slack did not know: ask again daily
                    if linked and linked != user_key:
                        async with self.db.write() as session:
                            await reattribute(session, subject, linked, self.team_of(linked))
            except Exception:  # try again with the next batch; the pairs are not lost
                log.exception("checking links after a stored batch failed")
                self._recheck |= pairs
                await asyncio.sleep(1.0)

    def team_of(self, user_key: str) -> str | None:
        """The person's primary team (bot/teams/assign.py): an unlinked id's spend in no team joins it."""
        return self.teams.primary_team(user_key) if self.teams is not None else None

    async def resolve(self, subject: str) -> str:
        return (await self.resolve_many([subject]))[subject]

    async def _load(self, subjects: list[str]):
        """external_id -> its stored row (external_id, slack_user_id, source, checked_at); plain
        rows, not ORM objects: this runs for ingest batches and ORM loading cost more than the query."""
        found = {}
        async with self.db.session() as session:
            for chunk in chunked(subjects):
                rows = await session.execute(
                    select(Identity.external_id, Identity.slack_user_id, Identity.source, Identity.checked_at)
                    .where(Identity.external_id.in_(chunk)))
                found.update({row.external_id: row for row in rows})
        return found

    async def link(self, external_id: str, slack_user_id: str, *, source: str, set_by: str | None) -> set[str]:
        """Link an external id to a person and move its past spend to them."""
        async with self.db.write() as session:
            identity = await session.get(Identity, external_id)
            if identity is None:
                identity = Identity(external_id=external_id, source=source, checked_at=self.clock.now())
                session.add(identity)
            identity.slack_user_id = slack_user_id
            identity.source = source
            identity.set_by = set_by
            identity.checked_at = self.clock.now()
            await session.flush()
            touched = await reattribute(session, external_id, slack_user_id, self.team_of(slack_user_id))
        self._cache[external_id] = (slack_user_id, time.monotonic() + CACHE_SECONDS)
        return touched

    async def linked_ids(self, slack_user_id: str) -> list[str]:
        async with self.db.session() as session:
            rows = await session.scalars(select(Identity.external_id).where(Identity.slack_user_id == slack_user_id))
            from_db = list(rows)
        return sorted({*from_db, *(k for k, v in self.config_links.items() if v == slack_user_id)})

    # -- background email lookups -------------------------------------------------
    def _queue_lookup(self, email: str) -> None:
        if self.lookup_email is None or email in self._pending_lookups:
            return
        self._pending_lookups.add(email)
        if self._queue is None:
            self._queue = asyncio.Queue()
        self._queue.put_nowait(email)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._work(), name="email-lookups")

    async def _work(self) -> None:
        assert self._queue is not None
        while not self._queue.empty():
            email = self._queue.get_nowait()
            try:
                await self.lookup_and_link(email)
            except Exception:  # keep the worker alive; the lookup is retried on a later sighting
                log.exception("email lookup failed for %s", email)
                self._cache.pop(email, None)
            finally:
                self._pending_lookups.discard(email)

    async def lookup_and_link(self, email: str) -> str | None:
        assert self.lookup_email is not None
        slack_user_id = await self.lookup_email(email)
        if slack_user_id:
            await self.link(email, slack_user_id, source="email", set_by=None)
            log.info("linked %s to %s", email, slack_user_id)
            return slack_user_id
        async with self.db.write() as session:
            identity = await session.get(Identity, email)
            if identity is None:
                session.add(Identity(external_id=email, source="email", checked_at=self.clock.now()))
            elif identity.slack_user_id is None:
                identity.checked_at = self.clock.now()
        return None

    async def settle_links(self) -> None:
        """Wait for the background link check of batches stored so far (tests)."""
        while self._rechecker is not None and not self._rechecker.done():
            await asyncio.gather(self._rechecker, return_exceptions=True)

    async def drain(self) -> None:
        """Wait for queued lookups and link checks (tests and shutdown)."""
        while any(t is not None and not t.done() for t in (self._worker, self._rechecker)):
            await asyncio.gather(*(t for t in (self._worker, self._rechecker) if t is not None),
                                 return_exceptions=True)

    async def close(self) -> None:
        if self._rechecker is not None and not self._rechecker.done():
            await asyncio.gather(self._rechecker, return_exceptions=True)  # a fix-up is worth finishing
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)

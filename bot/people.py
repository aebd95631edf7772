"""People as Slack knows them: display names for leaderboards, emails, workspace admins."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from slack_sdk.errors import SlackApiError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bot.config import SLACK_USER_ID
from bot.services import Services
from storage.chunks import chunked
from storage.models import Person

log = logging.getLogger(__name__)


async def remember_people(
    services: Services, people: Iterable[tuple[str, str]], *, emails: dict[str, str] | None = None
) -> None:
    """Store (slack id, display name) pairs, e.g. from users.info or the demo."""
    now = services.clock.now()
    async with services.db.write() as session:
        for slack_id, name in people:
            person = await session.get(Person, slack_id) or Person(slack_user_id=slack_id, fetched_at=now)
            person.display_name = name
            person.fetched_at = now
            if emails and slack_id in emails:
                person.email = emails[slack_id]
            session.add(person)


async def display_names(services: Services, user_keys: Iterable[str]) -> dict[str, str]:
    """user_key -> a name to show; unknown keys map to themselves."""
    keys = list(set(user_keys))
    names: dict[str, str] = {}
    async with services.db.session() as session:
        for chunk in chunked(keys):
            rows = await session.execute(
                select(Person.slack_user_id, Person.display_name).where(Person.slack_user_id.in_(chunk))
            )
            names.update({k: v for k, v in rows if v})
    return {k: names.get(k, f"Team {k[5:]}" if k.startswith("team:") else k) for k in keys}  # team:<name>: SPEC 13


PROFILE_TTL_SECONDS = 6 * 3600


async def fetch_person(services: Services, user_id: str, *, refresh: bool = False) -> Person | None:
    """users.info, cached in `people` for a few hours; None when Slack does not know the id."""
    now = services.clock.now()
    async with services.db.session() as session:
        cached = await session.get(Person, user_id)
    if cached is not None and not refresh and (now - cached.fetched_at).total_seconds() < PROFILE_TTL_SECONDS:
        return cached
    if services.slack is None:
        return cached
    try:
        response = await services.slack.users_info(user=user_id)
    except SlackApiError as exc:
        if exc.response.get("error") in ("user_not_found", "users_not_found"):
            return None
        if cached is not None:  # Slack trouble: an older answer beats none
            return cached
        raise
    user = response["user"]
    profile = user.get("profile") or {}

    async def store() -> Person:
        async with services.db.write() as session:
            person = await session.get(Person, user_id) or Person(slack_user_id=user_id, fetched_at=now)
            person.display_name = (
                profile.get("display_name") or profile.get("real_name") or user.get("real_name") or user.get("name")
            )
            person.email = profile.get("email")
            person.tz = user.get("tz")
            person.is_workspace_admin = bool(user.get("is_admin") or user.get("is_owner"))
            person.fetched_at = now
            session.add(person)
        return person

    try:
        return await store()
    except IntegrityError:  # another task or process stored the same person meanwhile: update that row
        return await store()


async def is_admin(services: Services, user_id: str) -> bool:
    """Admins: `admins` in config, or Slack workspace admins and owners (users.info)."""
    if user_id in services.settings.admins:
        return True
    person = await fetch_person(services, user_id)
    return bool(person and person.is_workspace_admin)


async def resolve_names(services: Services, keys: list[str]) -> dict[str, str | None]:
    """Display names for Slack ids: the people cache, then users.info (cached) for unknown ones."""
    people = sorted({k for k in keys if SLACK_USER_ID.match(k)})
    if not people:
        return {}
    known = await display_names(services, people)
    names: dict[str, str | None] = {k: (v if v and v != k else None) for k, v in known.items()}
    if services.slack is not None:
        for key in [k for k, v in names.items() if v is None]:
            try:
                person = await fetch_person(services, key)
            except Exception:  # a name is nice to have; the digest goes out without it
                log.debug("users.info failed for %s", key, exc_info=True)
                continue
            if person is not None and person.display_name:
                names[key] = person.display_name
    return names


async def tell_admins(services: Services, text: str, *, about: str) -> int:
    """DM every configured admin `text` (callers guard "once" in the database); returns how many got it.
    With no Slack or no admins the text is logged at ERROR, so it is never silently lost."""
    if services.slack is None or not services.settings.admins:
        log.error("no admin to tell (%s): %s", about, text)
        return 0
    told = 0
    for admin in services.settings.admins:
        try:
            await services.slack.chat_postMessage(channel=admin, text=text)
            told += 1
        except Exception:
            log.exception("could not tell admin %s about %s", admin, about)
    return told

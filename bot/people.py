"""People as Slack knows them: display names for leaderboards, emails, workspace admins."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from bot.services import Services
from storage.models import Person


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
        for start in range(0, len(keys), 500):
            rows = await session.execute(
                select(Person.slack_user_id, Person.display_name).where(
                    Person.slack_user_id.in_(keys[start : start + 500])
                )
            )
            names.update({k: v for k, v in rows if v})
    return {k: names.get(k, k) for k in keys}

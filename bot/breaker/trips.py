"""A trip: confirmed in the database, recorded once per episode, DM'd, and (in "pause" mode)
enforced at once.

`confirm_and_trip` sums the subject's window in the database; over the threshold it inserts
the episode (one process wins, storage/breaker_repo.py), and in the same transaction, in
"pause" mode, marks the person's enforcer pushes (bot/enforce/push.py) and writes the audit
row. Then the person and their approver get the DM (an unattributed key's goes to admins);
the messages are kept so every copy is updated in place later.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from bot.breaker.messages import post_trip
from bot.enforce import push as enforce_push
from bot.enforce.subjects import known_ids
from bot.services import Services
from storage import audit_repo, breaker_repo

log = logging.getLogger(__name__)

ALERT_QUIET = timedelta(hours=1)  # an alert-mode episode: no new trip for the subject for this long
RECHECK_SECONDS = 10.0  # under the threshold in the database: look again after this
OPEN_SECONDS = 60.0  # an open episode: no query for this long


async def confirm_and_trip(services: Services, detector, subject: str, now) -> float:
    """Trip `subject` if its window in the database is over its threshold. Returns how many seconds
    the detector should wait before checking this subject again."""
    settings = services.settings.breaker
    window = timedelta(minutes=settings.window_minutes)
    kind, _, name = subject.partition(":")
    threshold = await detector.threshold(subject)
    async with services.db.session() as session:
        subjects = await known_ids(services, session, name)  # every sender id that resolves to the subject
        if subject in await breaker_repo.open_subjects(session, [subject], now):
            return OPEN_SECONDS
        total, model = await breaker_repo.window_spend(session, user_key=name, subjects=subjects,
                                                       since=now - window, until=now + timedelta(minutes=1))
    if total <= threshold:
        return RECHECK_SECONDS
    last_model, key_id = detector.windows.last_of(subject)
    person = name if kind == "user" else None
    usual = await detector.usual(subject)
    pause = settings.mode == "pause"
    async with services.db.write() as session:
        trip = await breaker_repo.insert_trip(
            session, subject=subject, user_key=person, key_id=key_id if kind == "user" else name,
            model=model or last_model, status="paused" if pause else "alert", mode=settings.mode,
            tripped_at=now, window_minutes=settings.window_minutes, window_usd=total, usual_usd=usual,
            quiet_until=None if pause else now + ALERT_QUIET,
            auto_resume_at=now + timedelta(minutes=settings.auto_resume_minutes)
            if pause and settings.auto_resume_minutes else None)
        if trip is None:
            return OPEN_SECONDS  # another process (or task) tripped this episode
        audit_repo.add_audit(session, at=now, actor="tokenbot", action="breaker.tripped", subject=person or name,
                             trip_id=trip.id, episode=trip.episode, mode=settings.mode,
                             window_usd=str(total), usual_usd=str(usual), threshold_usd=str(threshold),
                             key=trip.key_id, model=trip.model)
        if pause:
            await enforce_push.mark_subject(services, session, subject)
    services.metrics.breaker_trips.inc()
    log.warning("breaker tripped for %s: $%.2f in %d min (threshold $%.2f)", subject, total,
                settings.window_minutes, threshold)
    if pause:
        enforce_push.kick(services)
    await post_trip(services, trip)
    return OPEN_SECONDS

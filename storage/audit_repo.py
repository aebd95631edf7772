"""The audit log (`audit_records`): every request, decision and admin change, with its details."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AuditRecord


def add_audit(session: AsyncSession, *, at: datetime, actor: str, action: str, subject: str | None,
              request_id: int | None = None, **details: Any) -> AuditRecord:
    record = AuditRecord(at=at, actor=actor, action=action, subject_user=subject, request_id=request_id,
                         details=details)
    session.add(record)
    return record


async def audit_records(session: AsyncSession, user: str | None, limit: int) -> list[AuditRecord]:
    """Newest first; about one person with `user`."""
    query = select(AuditRecord).order_by(AuditRecord.at.desc(), AuditRecord.id.desc()).limit(limit)
    if user:
        query = query.where(AuditRecord.subject_user == user)
    return list(await session.scalars(query))

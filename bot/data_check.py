"""The admins' "Data to check" (App Home section, listed in bot/wiring.py): this month's spend under
unlinked ids and the models stored without a price. It lives here, for admins only, instead of in
the channel digests, where it would teach everyone admin commands (bot/views/data_check.py)."""

from __future__ import annotations

from bot.clock import month_first_day, month_key
from bot.identities import is_slack_user_id
from bot.people import is_admin
from bot.providers.commands import drift_over_tolerance
from bot.services import Services
from bot.views.data_check import DataCheckView, data_check_blocks
from storage import queries, sources_repo


async def data_check_section(services: Services, user_id: str) -> list[dict]:
    """Nothing for non-admins, nor when there is nothing to check."""
    if not await is_admin(services, user_id):
        return []
    today = services.clock.today()
    async with services.db.session() as session:
        unlinked = await queries.unlinked_month(session, month_key(today))
        unpriced = await queries.unpriced_models(session, month_first_day(today), today)
        known = {model for model, *_ in unpriced}
        unpriced += [row for row in await sources_repo.unpriced_bill_side_models(session, month_first_day(today), today)
                     if row[0] not in known]  # provider buckets kept for the bill only (SPEC 10)
    view = DataCheckView(
        month_label=f"{today:%B}",
        unlinked=tuple((r.key, r.totals.cost_usd, r.totals.tokens) for r in unlinked if not is_slack_user_id(r.key)),
        unpriced=tuple(unpriced),
        drift=await drift_over_tolerance(services),
        tolerance_pct=services.settings.sources.tolerance_pct,
    )
    return data_check_blocks(view)

"""Channel digests: what a digest says, and posting it exactly once.

One module per kind of work: periods.py (subscriptions and the days a digest covers),
builder.py (the view model of bot/views/digest.py, from rollups, and the chart),
delivery.py (the once-only claim, the post, retries), jobs.py (the sweep and the cron
jobs) and cli.py (`tokenbot digest` and the demo). The claim's SQL is storage/digests_repo.py,
its lease and backoff storage/leases.py (shared with the outbox).

Subscriptions are the `[[digests]]` of the config plus the rows of `digest_subscriptions`
(`/tokens admin digest`). A stored row wins over a config entry for the same channel and
period: the admin command is the later, explicit act.

When: a "day" digest posted on local day D covers D-1; a "week" digest is posted on
Mondays and covers the previous Monday to Sunday. Its moment is the subscription's local
time in the organisation's zone (`clock.at_local`); a time that does not exist that day
(DST gap, e.g. 02:30 on the spring-forward Sunday) falls one hour later on the wall clock,
and an ambiguous time (fall back) means its first occurrence. Each subscription has a cron
job for punctuality, and a sweep (every 5 minutes and once at start-up) posts whatever is
due today and not posted yet: digests missed while the bot was down, skipped by a DST gap,
or added with `/tokens admin digest` since the process started (the sweep also adds their
cron jobs). Same day only: yesterday's missed digest is never posted today.

Exactly once: `digest_runs` (channel, period, period_start) is the key. A run is claimed
by INSERT (a conflict means someone else has it), built, posted, then marked `posted`
with the message ts, each step a conditional UPDATE on our claim token. A claim holds a
lease: a process that dies between claim and post leaves a claim another process (or the
restarted one) takes over once the lease has run out. The remaining window, which no
database can close without Slack taking part, is a process that dies after Slack accepted
the message and before the `posted` mark commits: that digest is posted again when the
lease expires. The post itself is bounded by POST_TIMEOUT, well inside the lease, so a slow
holder never overlaps with a taker-over. Each message carries Slack message metadata naming
its run, for a future check of the channel history before a takeover.

Failures: a transient error (5xx, 429 after the client's own retries, `ratelimited`,
timeouts, connection errors, or anything unexpected) keeps the claim with a later lease
(backoff 2, 4, 8, 16 minutes) and is logged; the sweep retries it; after MAX_ATTEMPTS the
run is marked failed and admins are told. A permanent error (not_in_channel,
channel_not_found, is_archived) marks the run failed at once. The transition to `failed`
is the once-only guard for the admin DMs. (Issue 4 listed "channel archived" among the
retried failures; the team's decision treats `is_archived` as permanent, since retrying
cannot help until a person acts.)

The chart (bot/charts.py) goes into the digest's thread after the text is marked posted;
a chart that fails is logged and the digest stands without it.

Everything is read from the rollups (usage_daily, usage_daily_model, usage_monthly),
never from raw events.
"""

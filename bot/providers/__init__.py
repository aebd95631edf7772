"""Provider sources (SPEC 10): the bill, pulled from the OpenAI and Anthropic Admin APIs.

- `settings`: `[sources.openai]`, `[sources.anthropic]`, `[reconcile]`, `leaderboard.show_output`;
- `admin_http`: one GET with backoff on 429/5xx (honouring retry-after) and key errors;
- `openai_pull`, `anthropic_pull`: the endpoints -> bucket, cost and Claude Code records;
- `buckets`: a bucket -> a ledger row, a re-polled bucket -> a row of the difference;
- `sync`: leases, cursors, windows, the admin DM on a refused key, the scheduled job;
- `reconcile`: the ledger against the bill; `output`: Claude Code output beside spend;
- `fake_admin`: in-process fake Admin APIs (the demo and the tests).
"""

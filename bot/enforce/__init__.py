"""Enforcers (SPEC 11): every limit decision pushed to where calls are made.

- `subjects`: what a subject ("user:U…", "key:…", "project:…", "team:<name>") should be allowed now;
- `litellm`: the LiteLLM proxy's management API (users' max_budget, key block/unblock, teams);
- `openai_limits`: OpenAI projects' hard spend limits;
- `push`: marking subjects inside decisions, and the leased, retried delivery;
- `status`: what admins see (`/tokens admin status`, `tokenbot enforce status`).
"""

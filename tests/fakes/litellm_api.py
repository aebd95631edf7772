"""The fake LiteLLM proxy (management API + an enforcing /chat/completions): the demo's own,
bot/enforce/fake_litellm.py, so the demo and the tests exercise one fake."""

from bot.enforce.fake_litellm import FakeLiteLLM, FakeUser

__all__ = ["FakeLiteLLM", "FakeUser"]

"""Build and sign requests exactly as Slack (and Standard Webhooks senders) do.

Implemented from the specs, independently of slack_sdk / slack_bolt / standardwebhooks, so tests
check the server against a second implementation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


def _now() -> int:
    return int(time.time())


def slack_signed_headers(body: bytes, signing_secret: str, *, timestamp: int | None = None,
                         content_type: str | None = None) -> dict[str, str]:
    """X-Slack-Request-Timestamp / X-Slack-Signature (v0) headers for `body`, plus Content-Type
    (JSON when the body looks like a JSON object, form-encoded otherwise)."""
    ts = str(_now() if timestamp is None else timestamp)
    base = b"v0:" + ts.encode() + b":" + body
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    if content_type is None:
        content_type = JSON if body.lstrip().startswith(b"{") else FORM
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
    }


def slash_command_body(command: str = "/tokens", text: str = "me", *, user_id: str = "U0REQUESTER",
                       user_name: str = "requester", channel_id: str = "C0GENERAL",
                       channel_name: str = "general", response_url: str | None = None,
                       trigger_id: str | None = None, team_id: str = "T0TEAM",
                       team_domain: str = "acme", api_app_id: str = "A0APP") -> bytes:
    """A slash command POST body (application/x-www-form-urlencoded, fields in Slack's order)."""
    fields = {
        "token": "deprecated-verification-token",
        "team_id": team_id,
        "team_domain": team_domain,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url or f"https://hooks.slack.com/commands/{team_id}/1/{uuid.uuid4().hex}",
        "trigger_id": trigger_id or new_trigger_id(),
    }
    return urlencode(fields).encode()


def new_trigger_id() -> str:
    """A fresh, unique trigger_id in Slack's shape."""
    return f"{_now()}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex}"


def _payload_body(payload: dict[str, Any]) -> bytes:
    return urlencode({"payload": json.dumps(payload, separators=(",", ":"))}).encode()


def block_action_body(payload: dict[str, Any]) -> bytes:
    """An interactivity POST body: form field ``payload`` holding the block_actions JSON."""
    return _payload_body(payload)


def view_submission_body(payload: dict[str, Any]) -> bytes:
    """An interactivity POST body: form field ``payload`` holding the view_submission JSON."""
    return _payload_body(payload)


def event_callback_body(event: dict[str, Any], event_id: str | None = None, *, team_id: str = "T0TEAM",
                        api_app_id: str = "A0APP", event_time: int | None = None) -> bytes:
    """An Events API ``event_callback`` JSON body wrapping `event`."""
    envelope = {
        "token": "deprecated-verification-token",
        "team_id": team_id,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
        "event_time": _now() if event_time is None else event_time,
        "authorizations": [{"enterprise_id": None, "team_id": team_id, "user_id": "UBOT",
                            "is_bot": True, "is_enterprise_install": False}],
        "is_ext_shared_channel": False,
    }
    return json.dumps(envelope).encode()


def standard_webhook_signature(body: bytes, secret: str, msg_id: str, timestamp: int) -> str:
    """``v1,<base64 HMAC-SHA256>`` of ``{id}.{timestamp}.{body}`` keyed with the decoded ``whsec_`` secret."""
    encoded = secret[len("whsec_"):] if secret.startswith("whsec_") else secret
    key = base64.b64decode(encoded + "=" * (-len(encoded) % 4))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def standard_webhook_headers(
    body: bytes, secret: str, *, msg_id: str | None = None, timestamp: int | None = None,
    extra_signatures: Sequence[str] = (),
) -> dict[str, str]:
    """Standard Webhooks headers for `body`; `extra_signatures` are sent too (space-separated)."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    ts = _now() if timestamp is None else timestamp
    signatures = [standard_webhook_signature(body, secret, msg_id, ts), *extra_signatures]
    return {
        "Content-Type": JSON,
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": " ".join(signatures),
    }

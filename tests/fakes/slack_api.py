"""A strict fake of the Slack Web API, served over real HTTP for tests.

Point slack_sdk's ``base_url`` (the bot's SLACK_API_URL) at ``fake.api_url``::

    async with FakeSlack() as fake:
        client = AsyncWebClient(token="xoxb-test", base_url=fake.api_url)
        await client.chat_postMessage(channel="C1", text="hi")
        [call] = await fake.wait_for("chat.postMessage")

Every request is recorded in ``fake.calls`` (also those answered with an error). Invalid Block Kit is
rejected like Slack does: messages with ``invalid_blocks`` (plus ``errors``), views with
``invalid_arguments`` (plus ``errors`` and ``response_metadata.messages``).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from multidict import CIMultiDict

from tests.fakes.blockkit import validate_blocks, validate_view

BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
APP_ID = "A0APP"
TEAM_ID = "T0TEAM"
TEAM_NAME = "Acme"
TEAM_URL = "https://acme.slack.com/"
JSON_ARGS = ("blocks", "view", "attachments", "files", "metadata")
MAX_TEXT = 40000
RESPONSE_URL_USES = 5


@dataclass
class SlackCall:
    """One request the fake received. `args` merges query, form and JSON arguments, with
    blocks/view/attachments/files/metadata decoded from JSON strings."""

    method: str
    args: dict[str, Any]
    headers: Mapping[str, str]
    path: str = ""
    status: int = 200
    response: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return bool(self.response and self.response.get("ok"))


@dataclass
class UploadedFile:
    id: str
    filename: str
    title: str
    content: bytes
    channel: str | None = None
    thread_ts: str | None = None
    initial_comment: str | None = None


@dataclass
class _Failure:
    status: int
    error: str | None
    retry_after: int
    times: int


class SlackError(Exception):
    """Raised by method handlers to answer ``{"ok": false, "error": ...}``."""

    def __init__(self, error: str, *, status: int = 200, **extra: Any) -> None:
        super().__init__(error)
        self.body = {"ok": False, "error": error, **extra}
        self.status = status


def _invalid(error: str, problems: list[str]) -> SlackError:
    messages = [f"[ERROR] {p}" for p in problems]
    return SlackError(error, errors=problems, response_metadata={"messages": messages})


class FakeSlack:
    def __init__(self, *, token: str | None = None) -> None:
        self.token = token  # when set, only this bot token is accepted
        self.users: dict[str, dict[str, Any]] = {}
        self.team_profile_fields: list[dict[str, Any]] = []
        self.channels: dict[str, dict[str, Any]] = {}  # extra conversations.info data per channel id
        self.missing_channels: set[str] = set()
        self.not_in_channels: set[str] = set()
        self.archived_channels: set[str] = set()
        self.expired_triggers: set[str] = set()
        # user group id -> member ids (usergroups.users.list); an id not here is `no_such_subteam`
        self.usergroups: dict[str, list[str]] = {}
        self.scopes_missing: set[str] = set()  # e.g. {"usergroups:read"}: those methods answer missing_scope
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._ts_counter = itertools.count(1)
        self._id_counter = itertools.count(1)
        self._waiters: list[asyncio.Future] = []
        self._methods: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.update": self._chat_update,
            "chat.getPermalink": self._chat_get_permalink,
            "conversations.open": self._conversations_open,
            "conversations.info": self._conversations_info,
            "views.open": self._views_open,
            "views.push": self._views_open,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "users.info": self._users_info,
            "users.lookupByEmail": self._users_lookup_by_email,
            "users.profile.get": self._users_profile_get,
            "team.profile.get": self._team_profile_get,
            "usergroups.users.list": self._usergroups_users_list,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
        }
        self.reset()

    def reset(self) -> None:
        """Forget recorded traffic and state; keeps users, channel settings and profile fields."""
        self.calls: list[SlackCall] = []
        self.ephemerals: list[dict[str, Any]] = []
        self.views: dict[str, dict[str, Any]] = {}
        self.home_views: dict[str, dict[str, Any]] = {}
        self.uploaded_files: list[UploadedFile] = []
        self._messages: dict[str, list[dict[str, Any]]] = {}
        self._pending_uploads: dict[str, dict[str, Any]] = {}
        self._used_triggers: set[str] = set()
        self._response_url_uses: dict[str, int] = {}
        self._failures: dict[str, list[_Failure]] = {}

    # -- lifecycle ----------------------------------------------------------------------------------
    async def start(self) -> FakeSlack:
        app = web.Application(client_max_size=100 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/upload/{file_id}", self._handle_upload)
        app.router.add_post("/response/{name}", self._handle_response_url)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeSlack:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("FakeSlack is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    def response_url(self, name: str = "default") -> str:
        """A response_url on the fake; posts to it land in `fake.responses` (method "response_url")."""
        return f"{self.base_url}/response/{name}"

    # -- test helpers -------------------------------------------------------------------------------
    def add_user(self, user_id: str, *, name: str, email: str | None = None, is_admin: bool = False,
                 tz: str = "America/New_York", fields: Mapping[str, Any] | None = None,
                 real_name: str | None = None, is_owner: bool = False, deleted: bool = False,
                 is_bot: bool = False) -> dict[str, Any]:
        """Add a workspace member. `fields` maps custom profile field ids to a value (or {value, alt})."""
        real_name = real_name or name
        try:
            offset = int(datetime.now(ZoneInfo(tz)).utcoffset().total_seconds())
        except Exception:
            offset = 0
        profile: dict[str, Any] = {
            "real_name": real_name, "display_name": name, "real_name_normalized": real_name,
            "display_name_normalized": name, "first_name": real_name.split(" ")[0], "title": "",
            "team": TEAM_ID, "fields": {
                key: value if isinstance(value, dict) else {"value": value, "alt": ""}
                for key, value in (fields or {}).items()
            },
        }
        if email is not None:
            profile["email"] = email
        user = {
            "id": user_id, "team_id": TEAM_ID, "name": name, "real_name": real_name, "deleted": deleted,
            "tz": tz, "tz_label": tz, "tz_offset": offset, "is_admin": is_admin or is_owner,
            "is_owner": is_owner, "is_bot": is_bot, "is_app_user": False, "profile": profile,
        }
        self.users[user_id] = user
        return user

    def fail_next(self, method: str, *, status: int | None = None, retry_after: int = 1, times: int = 1,
                  error: str | None = None) -> None:
        """Answer the next `times` calls to `method` with a failure: HTTP 429 + Retry-After by default,
        another HTTP `status` (e.g. 500), or HTTP 200 ``{"ok": false, "error": error}``."""
        if status is None:
            status = 200 if error else 429
        self._failures.setdefault(method, []).append(_Failure(status, error, retry_after, times))

    def calls_to(self, method: str) -> list[SlackCall]:
        return [call for call in self.calls if call.method == method]

    @property
    def responses(self) -> list[SlackCall]:
        """Posts to response URLs (args = the JSON payload, path = /response/<name>)."""
        return self.calls_to("response_url")

    def responses_to(self, name: str) -> list[SlackCall]:
        return [call for call in self.responses if call.path == f"/response/{name}"]

    def messages_in(self, channel: str) -> list[dict[str, Any]]:
        """Messages posted to `channel` (as they are now, after chat.update), oldest first."""
        return list(self._messages.get(channel, []))

    def channel_messages(self, channel: str) -> list[dict[str, Any]]:
        """What the channel itself shows: its messages without the replies kept in threads."""
        return [m for m in self._messages.get(channel, []) if not m.get("thread_ts") or m.get("reply_broadcast")]

    def thread_of(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """The replies in the thread of message `ts`, oldest first."""
        return [m for m in self._messages.get(channel, []) if m.get("thread_ts") == ts and m["ts"] != ts]

    async def wait_for(self, method: str, count: int = 1, timeout: float = 5.0, *,  # noqa: ASYNC109
                       where: Callable[[SlackCall], bool] | None = None) -> list[SlackCall]:
        """Wait until at least `count` calls to `method` (matching `where`) were answered; return them."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            matches = [c for c in self.calls_to(method) if c.response is not None and (not where or where(c))]
            if len(matches) >= count:
                return matches
            remaining = deadline - loop.time()
            if remaining <= 0:
                seen = ", ".join(c.method for c in self.calls) or "none"
                raise TimeoutError(f"expected {count} call(s) to {method}, got {len(matches)}; calls: {seen}")
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                pass
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def _notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.get_loop().call_soon_threadsafe(lambda w=waiter: w.done() or w.set_result(None))

    # -- HTTP plumbing ------------------------------------------------------------------------------
    def _answer(self, call: SlackCall, body: dict[str, Any], status: int = 200,
                headers: dict[str, str] | None = None) -> web.Response:
        call.response, call.status = body, status
        self._notify()
        return web.json_response(body, status=status, headers=headers)

    def _injected_failure(self, call: SlackCall) -> web.Response | None:
        queue = self._failures.get(call.method)
        if not queue:
            return None
        failure = queue[0]
        failure.times -= 1
        if failure.times <= 0:
            queue.pop(0)
        if failure.error:
            return self._answer(call, {"ok": False, "error": failure.error}, failure.status)
        if failure.status == 429:
            return self._answer(call, {"ok": False, "error": "ratelimited"}, 429,
                                {"Retry-After": str(failure.retry_after)})
        return self._answer(call, {"ok": False, "error": "internal_error"}, failure.status)

    async def _read_args(self, request: web.Request) -> dict[str, Any]:
        args: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            raw = await request.read()
            body = json.loads(raw) if raw else {}
            if not isinstance(body, dict):
                raise ValueError("JSON body must be an object")
            args.update(body)
        elif request.method == "POST":
            args.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
        for key in JSON_ARGS:
            if isinstance(args.get(key), str):
                try:
                    args[key] = json.loads(args[key])
                except ValueError:
                    pass  # left as a string; the handler rejects it
        return args

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        call = SlackCall(method, {}, CIMultiDict(request.headers), request.path)
        self.calls.append(call)
        if method not in self._methods:
            return self._answer(call, {"ok": False, "error": "unknown_method"}, 404)
        try:
            call.args = await self._read_args(request)
        except ValueError:
            return self._answer(call, {"ok": False, "error": "invalid_json"})
        auth = request.headers.get("Authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else call.args.get("token")
        if not token:
            return self._answer(call, {"ok": False, "error": "not_authed"})
        if not token.startswith("xoxb-") or (self.token is not None and token != self.token):
            return self._answer(call, {"ok": False, "error": "invalid_auth"})
        failure = self._injected_failure(call)
        if failure is not None:
            return failure
        try:
            body = {"ok": True, **self._methods[method](call.args)}
        except SlackError as e:
            return self._answer(call, e.body, e.status)
        return self._answer(call, body)

    async def _handle_upload(self, request: web.Request) -> web.Response:
        pending = self._pending_uploads.get(request.match_info["file_id"])
        if pending is None:
            return web.Response(status=404, text="file_not_found")
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            part = await reader.next()
            pending["content"] = await part.read() if part is not None else b""
        else:
            pending["content"] = await request.read()
        return web.Response(text=f"OK - {len(pending['content'])}")

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        call = SlackCall("response_url", {}, CIMultiDict(request.headers), request.path)
        self.calls.append(call)
        try:
            call.args = json.loads(await request.read())
            if not isinstance(call.args, dict):
                raise ValueError
        except ValueError:
            return self._answer(call, {"ok": False, "error": "invalid_payload"}, 400)
        failure = self._injected_failure(call)
        if failure is not None:
            return failure
        self._response_url_uses[name] = self._response_url_uses.get(name, 0) + 1
        if self._response_url_uses[name] > RESPONSE_URL_USES:
            return self._answer(call, {"ok": False, "error": "used_url"}, 404)
        payload = call.args
        try:
            if payload.get("response_type", "ephemeral") not in ("ephemeral", "in_channel"):
                raise SlackError("invalid_response_type")
            if not payload.get("delete_original"):
                self._check_message_content(payload)
        except SlackError as e:
            return self._answer(call, e.body, 400)
        return self._answer(call, {"ok": True})

    # -- shared checks ------------------------------------------------------------------------------
    def _next_ts(self) -> str:
        micros = next(self._ts_counter) * 100
        return f"{1732600000 + micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._id_counter):08d}"

    def _channel(self, args: dict[str, Any], key: str = "channel", *, dm_from_user: bool = True) -> str:
        channel = args.get(key)
        if not channel or not isinstance(channel, str) or channel in self.missing_channels:
            raise SlackError("channel_not_found")
        if channel[0] in "UW":
            if not dm_from_user:
                raise SlackError("channel_not_found")
            channel = "D" + channel
        if channel in self.archived_channels:
            raise SlackError("is_archived")
        if channel in self.not_in_channels:
            raise SlackError("not_in_channel")
        return channel

    def _check_message_content(self, args: dict[str, Any]) -> None:
        blocks = args.get("blocks")
        if blocks is not None:
            if isinstance(blocks, str):
                raise SlackError("invalid_blocks_format")
            problems = validate_blocks(blocks, surface="message")
            if problems:
                raise _invalid("invalid_blocks", problems)
        text = args.get("text")
        if not (text or blocks or args.get("attachments") or args.get("markdown_text")):
            raise SlackError("no_text")
        if isinstance(text, str) and len(text) > MAX_TEXT:
            raise SlackError("msg_too_long")

    def _find_message(self, channel: str, ts: Any) -> dict[str, Any]:
        for message in self._messages.get(channel, []):
            if message["ts"] == ts:
                return message
        raise SlackError("message_not_found")

    # -- chat -----------------------------------------------------------------------------------------
    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"url": TEAM_URL, "team": TEAM_NAME, "user": "tokenbot", "team_id": TEAM_ID,
                "user_id": BOT_USER_ID, "bot_id": BOT_ID, "is_enterprise_install": False}

    def _chat_post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args)
        self._check_message_content(args)
        ts = self._next_ts()
        message = {"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "app_id": APP_ID,
                   "team": TEAM_ID, "ts": ts, "text": args.get("text", "")}
        for key in ("blocks", "attachments", "thread_ts", "reply_broadcast", "metadata"):
            if args.get(key) is not None:
                message[key] = args[key]
        self._messages.setdefault(channel, []).append(message)
        return {"channel": channel, "ts": ts, "message": copy.deepcopy(message)}

    def _chat_post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args)
        if not args.get("user"):
            raise SlackError("user_not_found")
        self._check_message_content(args)
        ts = self._next_ts()
        self.ephemerals.append({"channel": channel, "user": args["user"], "message_ts": ts,
                                "text": args.get("text", ""), "blocks": args.get("blocks"),
                                "thread_ts": args.get("thread_ts")})
        return {"message_ts": ts}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args, dm_from_user=False)
        message = self._find_message(channel, args.get("ts"))
        self._check_message_content(args)
        if "blocks" in args:
            message["blocks"] = args["blocks"]
        elif "text" in args:
            message.pop("blocks", None)  # Slack drops old blocks when only text is sent
        for key in ("text", "attachments", "metadata"):
            if key in args:
                message[key] = args[key]
        return {"channel": channel, "ts": message["ts"], "text": message.get("text", ""),
                "message": copy.deepcopy(message)}

    def _chat_get_permalink(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args, dm_from_user=False)
        ts = self._find_message(channel, args.get("message_ts"))["ts"]
        return {"channel": channel, "permalink": f"{TEAM_URL}archives/{channel}/p{ts.replace('.', '')}"}

    # -- conversations --------------------------------------------------------------------------------
    def _conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        if args.get("channel"):
            return {"channel": {"id": self._channel(args)}}
        users = [u for u in str(args.get("users", "")).split(",") if u]
        if not users:
            raise SlackError("users_list_not_supplied")
        if len(users) == 1:
            channel = {"id": "D" + users[0], "is_im": True, "user": users[0]}
        else:
            channel = {"id": "G" + "".join(sorted(users)), "is_mpim": True}
        return {"channel": channel, "already_open": False}

    def _conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        channel_id = args.get("channel")
        if not channel_id or channel_id in self.missing_channels:
            raise SlackError("channel_not_found")
        info = {"id": channel_id, "name": channel_id.lower(), "is_channel": channel_id[0] == "C",
                "is_group": channel_id[0] == "G", "is_im": channel_id[0] == "D",
                "is_private": channel_id[0] in "GD", "is_archived": channel_id in self.archived_channels,
                "is_member": channel_id not in self.not_in_channels}
        if channel_id[0] == "D":
            info["user"] = channel_id[1:]
        return {"channel": {**info, **self.channels.get(channel_id, {})}}

    # -- views ------------------------------------------------------------------------------------------
    def _checked_view(self, args: dict[str, Any], kind: str) -> dict[str, Any]:
        view = args.get("view")
        if not isinstance(view, dict):
            raise SlackError("invalid_arguments", errors=["view must be a JSON object"])
        problems = validate_view(view)
        if not problems and view.get("type") != kind:
            problems = [f"view type must be {kind} here [json-pointer:/view/type]"]
        if problems:
            raise _invalid("invalid_arguments", problems)
        return view

    def _store_view(self, view: dict[str, Any], view_id: str, previous: str | None = None) -> dict[str, Any]:
        stored = {
            "id": view_id, "team_id": TEAM_ID, "app_id": APP_ID, "bot_id": BOT_ID,
            "private_metadata": "", "callback_id": "", "external_id": "",
            **copy.deepcopy(view),
            "state": {"values": {}}, "hash": f"1732600000.{next(self._id_counter):08d}",
            "root_view_id": view_id, "previous_view_id": previous,
        }
        self.views[view_id] = stored
        return stored

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:  # views.open and views.push
        trigger = args.get("trigger_id") or args.get("interactivity_pointer")
        if not trigger:
            raise SlackError("invalid_arguments", errors=["trigger_id is required"])
        if trigger in self.expired_triggers:
            raise SlackError("expired_trigger_id")
        if trigger in self._used_triggers:
            raise SlackError("exchanged_trigger_id")
        view = self._checked_view(args, "modal")
        self._used_triggers.add(trigger)
        return {"view": copy.deepcopy(self._store_view(view, self._next_id("V")))}

    def _views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        if args.get("view_id"):
            view_id = args["view_id"]
        elif args.get("external_id"):
            ids = [v["id"] for v in self.views.values() if v.get("external_id") == args["external_id"]]
            view_id = ids[-1] if ids else None
        else:
            raise SlackError("invalid_arguments", errors=["view_id or external_id is required"])
        old = self.views.get(view_id or "")
        if old is None or old["type"] != "modal":
            raise SlackError("not_found")
        if args.get("hash") and args["hash"] != old["hash"]:
            raise SlackError("hash_conflict")
        view = {"external_id": old["external_id"], **self._checked_view(args, "modal")}
        return {"view": copy.deepcopy(self._store_view(view, old["id"], old["previous_view_id"]))}

    def _views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        user_id = args.get("user_id")
        if not user_id:
            raise SlackError("invalid_arguments", errors=["user_id is required"])
        old = self.home_views.get(user_id)
        if old and args.get("hash") and args["hash"] != old["hash"]:
            raise SlackError("hash_conflict")
        view = self._checked_view(args, "home")
        stored = self._store_view(view, old["id"] if old else self._next_id("V"))
        self.home_views[user_id] = stored
        return {"view": copy.deepcopy(stored)}

    # -- users and team -----------------------------------------------------------------------------------
    def _user(self, user_id: Any) -> dict[str, Any]:
        if user_id not in self.users:
            raise SlackError("user_not_found")
        return copy.deepcopy(self.users[user_id])

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"user": self._user(args.get("user"))}

    def _users_lookup_by_email(self, args: dict[str, Any]) -> dict[str, Any]:
        email = str(args.get("email", "")).lower()
        for user in self.users.values():
            if email and str(user.get("profile", {}).get("email", "")).lower() == email:
                return {"user": copy.deepcopy(user)}
        raise SlackError("users_not_found")

    def _users_profile_get(self, args: dict[str, Any]) -> dict[str, Any]:
        profile = self._user(args.get("user") or BOT_USER_ID).get("profile", {})
        profile["fields"] = profile.get("fields") or {}
        if str(args.get("include_labels", "")).lower() in ("1", "true"):
            labels = {f["id"]: f.get("label", "") for f in self.team_profile_fields}
            for key, value in profile["fields"].items():
                value["label"] = labels.get(key, "")
        return {"profile": profile}

    def _usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        """As Slack: `usergroup` is required (`invalid_arguments` without it), an unknown or deleted
        group is `no_such_subteam`, and without the `usergroups:read` scope the answer is `missing_scope`."""
        if "usergroups:read" in self.scopes_missing:
            raise SlackError("missing_scope", needed="usergroups:read", provided="chat:write,commands")
        group = args.get("usergroup")
        if not isinstance(group, str) or not group:
            raise SlackError("invalid_arguments")
        if group not in self.usergroups:
            raise SlackError("no_such_subteam")
        return {"users": list(self.usergroups[group])}

    def _team_profile_get(self, args: dict[str, Any]) -> dict[str, Any]:
        fields = [{"ordering": i, "hint": "", "possible_values": None, "options": None, "is_hidden": False,
                   **f} for i, f in enumerate(self.team_profile_fields)]
        return {"profile": {"fields": fields, "sections": []}}

    # -- files ---------------------------------------------------------------------------------------------
    def _files_get_upload_url(self, args: dict[str, Any]) -> dict[str, Any]:
        try:
            length = int(args.get("length", ""))
        except ValueError:
            raise SlackError("invalid_arguments", errors=["length is required"]) from None
        if not args.get("filename"):
            raise SlackError("invalid_arguments", errors=["filename is required"])
        file_id = self._next_id("F")
        self._pending_uploads[file_id] = {"filename": args["filename"], "length": length, "content": None}
        return {"upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}

    def _files_complete_upload(self, args: dict[str, Any]) -> dict[str, Any]:
        files = args.get("files")
        if not isinstance(files, list) or not files:
            raise SlackError("invalid_arguments", errors=["files must be a JSON list"])
        channel = None
        if args.get("channel_id") or args.get("channels"):
            key = "channel_id" if args.get("channel_id") else "channels"
            channel = self._channel({"channel": str(args[key]).split(",")[0]})
        done = []
        for item in files:
            pending = self._pending_uploads.get(item.get("id", "")) if isinstance(item, dict) else None
            if pending is None or pending["content"] is None:
                raise SlackError("file_not_found")
            done.append((item, pending))
        result = []
        for item, pending in done:
            uploaded = UploadedFile(
                id=item["id"], filename=pending["filename"], title=item.get("title") or pending["filename"],
                content=pending["content"], channel=channel, thread_ts=args.get("thread_ts"),
                initial_comment=args.get("initial_comment"),
            )
            del self._pending_uploads[item["id"]]
            self.uploaded_files.append(uploaded)
            result.append({"id": uploaded.id, "name": uploaded.filename, "title": uploaded.title,
                           "size": len(uploaded.content), "user": BOT_USER_ID})
        return {"files": result}

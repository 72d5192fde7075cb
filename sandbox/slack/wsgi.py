"""The emulator's HTTP surface as one WSGI app: Web API, response URLs, chat page.

It only translates: HTTP request in, a call on the emulator, HTTP response out.
"""

from __future__ import annotations

import json
import urllib.error
from collections.abc import Callable, Iterable
from email.parser import BytesParser
from email.policy import HTTP
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from sandbox.slack import page, responses
from sandbox.slack.errors import ApiError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from sandbox.slack.server import SlackEmulator

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
Reply = tuple[int, dict[str, str], bytes]


def _json_reply(status: int, body: Any, headers: dict[str, str] | None = None) -> Reply:
    return (
        status,
        {"Content-Type": "application/json; charset=utf-8", **(headers or {})},
        json.dumps(body).encode(),
    )


def _read_body(environ: WSGIEnvironment) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    stream = environ["wsgi.input"]
    data: bytes = stream.read(length) if length > 0 else b""
    return data


def parse_params(environ: WSGIEnvironment, body: bytes) -> dict[str, Any]:
    """Query string, form, multipart or JSON params merged, as Slack accepts any of them."""
    query = str(environ.get("QUERY_STRING", ""))
    params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    content_type = str(environ.get("CONTENT_TYPE", ""))
    if not body:
        return params
    if "json" in content_type:
        parsed = json.loads(body)
        if not isinstance(parsed, dict):
            raise ApiError("invalid_json")
        params.update(parsed)
    elif content_type.startswith("multipart/form-data"):
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body
        )
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                params[name] = payload.decode("utf-8", "replace")
    else:
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return params


def _token(environ: WSGIEnvironment, params: dict[str, Any]) -> str | None:
    auth = str(environ.get("HTTP_AUTHORIZATION", ""))
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    token = params.pop("token", None)
    return str(token) if token else None


class EmulatorWsgi:
    """Routes: /api/<method>, /response/<id>, /, /static/<file>, /sandbox/*."""

    def __init__(self, emulator: SlackEmulator) -> None:
        self.emu = emulator
        self._page_routes: dict[str, Callable[[dict[str, Any]], Reply]] = {
            "/sandbox/command": self._command,
            "/sandbox/click": self._click,
            "/sandbox/message": self._message,
            "/sandbox/view_submit": self._view_submit,
            "/sandbox/view_close": self._view_close,
        }

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            status, headers, body = self._route(environ)
        except ApiError as err:
            status, headers, body = _json_reply(err.status, err.body(), err.headers)
        except (ValueError, KeyError) as err:
            status, headers, body = _json_reply(400, {"ok": False, "error": str(err)})
        headers.setdefault("Content-Length", str(len(body)))
        reason = _REASONS.get(status, "Unknown")
        start_response(f"{status} {reason}", list(headers.items()))
        return [body]

    def _route(self, environ: WSGIEnvironment) -> Reply:
        path = str(environ.get("PATH_INFO", "/"))
        verb = str(environ.get("REQUEST_METHOD", "GET"))
        if path.startswith("/api/"):
            body = _read_body(environ)
            params = parse_params(environ, body)
            token = _token(environ, params)
            result = self.emu.webapi.call(path[len("/api/") :], params, token)
            return _json_reply(result.status, result.body, result.headers)
        if path.startswith("/response/"):
            if verb != "POST":
                return _json_reply(405, {"ok": False, "error": "method_not_allowed"})
            return self._response_url(path[len("/response/") :], environ)
        if verb == "GET":
            return self._get(path, environ)
        if verb == "POST" and path in self._page_routes:
            raw = _read_body(environ)
            data = json.loads(raw) if raw else {}
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object")
            return self._page_routes[path](data)
        return _json_reply(404, {"ok": False, "error": "not_found"})

    def _get(self, path: str, environ: WSGIEnvironment) -> Reply:
        if path in ("/", "/index.html"):
            found = page.static_file(page.PAGE)
        elif path.startswith("/static/"):
            found = page.static_file(path[len("/static/") :])
        elif path == "/sandbox/state":
            query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
            return _json_reply(
                200,
                self.emu.page_state(
                    query.get("channel") or "C0ROLLOUT", query.get("user") or "U0ALICE"
                ),
            )
        elif path == "/healthz":
            return 200, {"Content-Type": "text/plain"}, b"ok"
        else:
            found = None
        if found is None:
            return _json_reply(404, {"ok": False, "error": "not_found"})
        content, content_type = found
        return 200, {"Content-Type": content_type, "Cache-Control": "no-store"}, content

    def _response_url(self, url_id: str, environ: WSGIEnvironment) -> Reply:
        fault = self.emu.faults.take("response_url")
        if fault is not None:
            self.emu.workspace.record_refused_response(url_id)
            return _json_reply(
                fault.http_status, {"ok": False, "error": fault.error}, fault.headers
            )
        raw = _read_body(environ)
        body = parse_params(environ, raw)
        if "payload" in body and isinstance(body["payload"], str):
            body = json.loads(body["payload"])
        responses.post(self.emu.workspace, url_id, body)
        return _json_reply(200, {"ok": True})

    # -- the page's actions ------------------------------------------------------------------

    def _forward(self, send: Callable[[], tuple[int, dict[str, str], str]]) -> Reply:
        if not self.emu.events_url:
            return _json_reply(200, {"ok": False, "error": "No app connected: events_url unset"})
        try:
            status, _, body = send()
        except (urllib.error.URLError, OSError) as err:
            return _json_reply(
                200,
                {
                    "ok": False,
                    "error": f"The app at {self.emu.events_url} did not answer: "
                    f"{getattr(err, 'reason', err)}",
                },
            )
        return _json_reply(200, {"ok": 200 <= status < 300, "status": status, "body": body})

    def _command(self, data: dict[str, Any]) -> Reply:
        text = str(data.get("text", "")).strip()
        command, _, rest = text.partition(" ")
        if not command.startswith("/"):
            raise ValueError("a slash command starts with /")
        return self._forward(
            lambda: self.emu.send_slash_command(
                str(data["user"]), str(data["channel"]), rest.strip(), command=command
            )
        )

    def _click(self, data: dict[str, Any]) -> Reply:
        block_id = data.get("block_id")
        return self._forward(
            lambda: self.emu.click_button(
                str(data["user"]),
                str(data["channel"]),
                str(data["message_ts"]),
                str(data["action_id"]),
                str(data.get("value", "")),
                block_id=str(block_id) if block_id else None,
            )
        )

    def _view_submit(self, data: dict[str, Any]) -> Reply:
        typed = data.get("values") or {}
        if not isinstance(typed, dict):
            raise ValueError("values: expected an object of block_id to text")
        return self._forward(
            lambda: self.emu.submit_view(
                str(data["user"]), str(data["view_id"]), {str(k): str(v) for k, v in typed.items()}
            )
        )

    def _view_close(self, data: dict[str, Any]) -> Reply:
        self.emu.close_view(str(data["user"]), str(data["view_id"]))
        return _json_reply(200, {"ok": True})

    def _message(self, data: dict[str, Any]) -> Reply:
        text = str(data.get("text", ""))
        if not text.strip():
            raise ValueError("empty message")
        thread_ts = data.get("thread_ts")
        msg = self.emu.workspace.post_message(
            str(data["channel"]),
            user=str(data["user"]),
            text=text,
            thread_ts=str(thread_ts) if thread_ts else None,
        )
        return _json_reply(200, {"ok": True, "ts": msg.ts})

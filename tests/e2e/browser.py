"""A headless Chromium driven over the DevTools protocol, for tests that act as a person on
the chat page: type, pick a user, click a button, confirm a dialog."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from typing import Any

import websocket

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--remote-allow-origins=*", "--remote-debugging-port=0", "--window-size=1280,1000",
]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Page:
    """One tab: evaluate JavaScript and wait for what it returns to become true."""

    def __init__(self, binary: str, url: str) -> None:
        # Chromium's helper processes may still be writing the profile as it closes
        self._profile = tempfile.TemporaryDirectory(ignore_cleanup_errors=True)
        self._proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={self._profile.name}", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        port = self._devtools_port()
        deadline = time.monotonic() + 20
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                pages = [t for t in json.load(r) if t.get("type") == "page"]
            if pages or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self._ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=20)
        self._ids = itertools.count(1)

    def _devtools_port(self) -> int:
        assert self._proc.stderr is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = self._proc.stderr.readline()
            found = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
            if found:
                return int(found.group(1))
        raise RuntimeError("Chromium did not open its DevTools port")

    def evaluate(self, expression: str) -> Any:
        call_id = next(self._ids)
        self._ws.send(json.dumps({"id": call_id, "method": "Runtime.evaluate", "params": {
            "expression": expression, "awaitPromise": True, "returnByValue": True}}))
        while True:
            reply = json.loads(self._ws.recv())
            if reply.get("id") == call_id:
                result = reply.get("result", {})
                if "exceptionDetails" in result:
                    raise RuntimeError(result["exceptionDetails"].get("text", "JS error"))
                return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"the page never showed: {expression}")
            time.sleep(0.1)

    def screenshot(self, path: str) -> None:
        import base64

        call_id = next(self._ids)
        self._ws.send(json.dumps({"id": call_id, "method": "Page.captureScreenshot"}))
        while True:
            reply = json.loads(self._ws.recv())
            if reply.get("id") == call_id:
                with open(path, "wb") as out:
                    out.write(base64.b64decode(reply["result"]["data"]))
                return

    def close(self) -> None:
        self._ws.close()
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
        if self._proc.stderr:
            self._proc.stderr.close()
        self._profile.cleanup()

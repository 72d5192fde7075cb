"""Emulator lifecycle: free ports, clean stops with open watches, the foreground entry point."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, cast

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from sandbox.kube import KubeEmulator

GW = ("gateway.networking.k8s.io", "v1")
ROOT = Path(__file__).resolve().parents[2]


def test_two_emulators_on_free_ports_with_separate_worlds() -> None:
    first, second = KubeEmulator(seed="demo"), KubeEmulator(seed="empty")
    with first, second:
        assert first.url != second.url
        assert first.get_object(*GW, "httproutes", "default", "routes-to-llm") is not None
        assert second.get_object(*GW, "httproutes", "default", "routes-to-llm") is None
        assert second.get_object("", "v1", "namespaces", None, "default") is not None


def test_kubeconfig_has_a_sandbox_context(tmp_path: Path) -> None:
    with KubeEmulator(seed="empty") as emulator:
        path = emulator.write_kubeconfig(tmp_path / "nested" / "config")
        config = yaml.safe_load(path.read_text())
    assert config["current-context"] == "sandbox"
    assert config["clusters"][0] == {"name": "sandbox", "cluster": {"server": emulator.url}}
    assert config["users"][0]["name"] == "sandbox"


def test_stop_ends_open_watches_quickly() -> None:
    emulator = KubeEmulator(seed="demo")
    emulator.start()
    url = (f"{emulator.url}/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes"
           "?watch=1&resourceVersion=0")
    received: list[bytes] = []

    def watch() -> None:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310
            received.extend(response)

    reader = threading.Thread(target=watch, daemon=True)
    reader.start()
    deadline = time.monotonic() + 5
    while not any(r.verb == "watch" for r in emulator.requests):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    started = time.monotonic()
    emulator.stop()
    reader.join(20)
    # an open watch otherwise lasts its 30 s client timeout (the server's is 30 min): 10 s
    # tells the two apart on a loaded machine
    assert time.monotonic() - started < 10
    events = [json.loads(line) for line in b"".join(received).split(b"\n") if line.strip()]
    assert {e["object"]["metadata"]["name"] for e in events} == {"llm-route", "routes-to-llm"}
    emulator.stop()  # idempotent


def _cpu_seconds(thread: threading.Thread) -> float:
    """The CPU time (user and system) one thread of this process has used so far."""
    fields = Path(f"/proc/self/task/{thread.native_id}/stat").read_text().rsplit(")", 1)[1]
    utime, stime = fields.split()[11:13]
    return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")


def test_an_idle_emulator_does_not_spin_and_its_loop_ends_on_stop() -> None:
    """Its server loop waits in poll: a fractional loop timeout, cut to 0 by waitress, made
    it spin at about 30% of a core with nothing to do."""
    with KubeEmulator(seed="demo") as emulator:
        name = f"kube-emulator-{emulator.url.rsplit(':', 1)[1]}"
        [loop] = [t for t in threading.enumerate() if t.name == name]
        before = _cpu_seconds(loop)
        time.sleep(1.0)
        assert _cpu_seconds(loop) - before < 0.05
        assert emulator.get_object(*GW, "httproutes", "default", "routes-to-llm") is not None
    loop.join(5)
    assert not loop.is_alive()


def test_concurrent_conditional_writers_one_wins_per_version() -> None:
    with KubeEmulator(seed="demo") as emulator:
        configuration = client.Configuration()
        configuration.host = emulator.url
        with client.ApiClient(configuration) as api:
            co = client.CustomObjectsApi(api)
            route = cast(dict[str, Any], co.get_namespaced_custom_object(
                *GW, "default", "httproutes", "routes-to-llm"))
            rv = route["metadata"]["resourceVersion"]
            outcomes: list[int] = []
            lock = threading.Lock()

            def write(weight: int) -> None:
                patch = {"metadata": {"resourceVersion": rv},
                         "spec": {"hostnames": [f"h{weight}.example"]}}
                try:
                    co.patch_namespaced_custom_object(*GW, "default", "httproutes",
                                                      "routes-to-llm", patch)
                    code = 200
                except ApiException as exc:
                    code = exc.status
                with lock:
                    outcomes.append(code)

            threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(10)
    assert sorted(outcomes) == [200] + [409] * 7


def test_serve_forever_runs_in_the_foreground_until_sigterm(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    code = ("from sandbox.kube import serve_forever; "
            f"serve_forever(0, {str(kubeconfig)!r}, seed='demo')")
    process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "listening on http://127.0.0.1:" in first
        assert "kubectl" in process.stdout.readline() + process.stdout.readline()
        server = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
        with urllib.request.urlopen(server + "/version", timeout=5) as response:  # noqa: S310
            assert json.loads(response.read())["major"] == "1"
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=10)
        assert process.returncode == 0
        assert "stopped" in out
    finally:
        process.kill()

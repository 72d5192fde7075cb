"""The break-glass CLI: the same service, the actor recorded as cli:<user>, kubectl agrees."""

from __future__ import annotations

import getpass
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import EXIT_OK, EXIT_REFUSED
from sandbox.kube import KubeEmulator
from sandbox.redis_server import RedisServer
from tests.integration.conftest import Cli, unique_prefix


def _kubectl_weights(kubeconfig: Path, route: str = "routes-to-llm") -> list[int]:
    done = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), "--request-timeout=10s", "get",
         "httproutes", route, "-n", "default", "-o", "json"],
        capture_output=True, text=True, check=True, timeout=30,
    )
    refs = json.loads(done.stdout)["spec"]["rules"][0]["backendRefs"]
    return [ref["weight"] for ref in refs]


def test_start_then_four_approvals_move_the_route_as_kubectl_sees_it(
    cli: Cli, kube_kubeconfig: Path
) -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: the weights are checked through kubectl")
    code, out, err = cli("start", "llm-pool-version-2", "--interval", "0s", "--as", "alice")
    assert code == EXIT_OK, err
    assert "started" in out and "awaits approval" in out
    seen = [_kubectl_weights(kube_kubeconfig)]
    for _ in range(4):
        code, out, err = cli("approve", "llm-pool-version-2", "--as", "bob")
        assert code == EXIT_OK, err
        seen.append(_kubectl_weights(kube_kubeconfig))
    assert seen == [[100, 0], [90, 10], [75, 25], [50, 50], [0, 100]]
    code, out, _ = cli("history", "llm-pool-version-2")
    assert out.count("step_applied") == 4 and "by cli:bob (login " in out
    assert "started by cli:alice" in out


def test_rollback_at_50_restores_100_0(cli: Cli, kube_emulator: KubeEmulator) -> None:
    spec = kube_emulator.get_object("gateway.networking.k8s.io", "v1", "httproutes", "default",
                                    "routes-to-llm")
    assert spec is not None
    cli("start", "llm-pool-version-2", "--interval", "0s", "--as", "alice")
    for _ in range(3):
        cli("approve", "llm-pool-version-2", "--as", "bob")
    code, out, _ = cli("rollback", "llm-pool-version-2", "--as", "bob", "--reason", "errors")
    assert code == EXIT_OK and "rolled back" in out
    after = kube_emulator.get_object("gateway.networking.k8s.io", "v1", "httproutes",
                                     "default", "routes-to-llm")
    assert after is not None and after["spec"] == spec["spec"]
    code, out, _ = cli("status", "llm-pool-version-2")
    assert "rolled back" in out and "stable 100 / canary 0" in out


def test_node_update_through_the_cli(cli: Cli, kube_emulator: KubeEmulator) -> None:
    code, _, err = cli("start", "llm-new", "--route", "llm-route", "--as", "alice")
    assert code == EXIT_OK, err
    route = kube_emulator.get_object("gateway.networking.k8s.io", "v1", "httproutes",
                                     "default", "llm-route")
    assert route is not None
    assert [r["name"] for r in route["spec"]["rules"][0]["backendRefs"]] == ["llm", "llm-new"]
    code, _, _ = cli("rollback", "llm-new", "--as", "bob")
    route = kube_emulator.get_object("gateway.networking.k8s.io", "v1", "httproutes",
                                     "default", "llm-route")
    assert route is not None
    assert [r["name"] for r in route["spec"]["rules"][0]["backendRefs"]] == ["llm"]


@pytest.mark.parametrize(("argv", "message"), [
    (["start", "llm-pool-version-2", "--steps", "50,10,100"], "strictly increase"),
    (["start", "llm-pool-version-2", "--steps", "10,50"], "must be 100"),
    (["start", "llm-pool-version-2", "--interval", "soon"], "invalid interval"),
    (["start", "nope"], "InferencePool nope not found"),
    (["approve", "llm-pool-version-2"], "no rollout of llm-pool-version-2"),
])
def test_bad_input_is_refused_with_a_clear_line(cli: Cli, argv: list[str], message: str) -> None:
    code, out, err = cli(*argv)
    assert code == EXIT_REFUSED
    assert err.startswith("refused: ") and message in err
    assert "Traceback" not in err + out


def test_list_shows_active_rollouts(cli: Cli) -> None:
    cli("start", "llm-pool-version-2", "--as", "alice")
    code, out, _ = cli("list")
    assert code == EXIT_OK and "llm-pool-version-2" in out and "awaiting approval" in out


def test_the_console_script_runs_as_a_process(kube_kubeconfig: Path,
                                              redis_server: RedisServer) -> None:
    env_prefix = unique_prefix()
    done = subprocess.run(
        [sys.executable, "-m", "bot", "status", "llm-pool-version-2", "--kubeconfig",
         str(kube_kubeconfig), "--redis-url", redis_server.url],
        check=False, capture_output=True, text=True, timeout=60,
        env={"ROLLOUT_KEY_PREFIX": env_prefix, "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert "no rollout of default/llm-pool-version-2 is recorded" in done.stdout


def test_an_automatic_plan_from_the_cli_needs_approve_plan_by_another_name(cli: Cli) -> None:
    code, out, err = cli("start", "llm-pool-version-2", "--auto", "--interval", "0s",
                         "--steps", "50,100", "--as", "alice")
    assert code == EXIT_OK, err
    assert "approve-plan" in out
    code, _, err = cli("approve-plan", "llm-pool-version-2", "--as", "alice")
    assert code == EXIT_REFUSED and "two-person rule" in err
    code, _, err = cli("approve", "llm-pool-version-2", "--as", "bob")
    assert code == EXIT_REFUSED and "approve-plan" in err
    code, out, err = cli("approve-plan", "llm-pool-version-2", "--as", "bob")
    assert code == EXIT_OK, err
    assert "approved the plan" in out
    code, out, _ = cli("history", "llm-pool-version-2")
    login = getpass.getuser()
    assert f"plan_approved by cli:bob (login {login}) via cli" in out
    assert f"started by cli:alice (login {login})" in out


def test_resume_of_a_rollout_that_is_not_paused_is_refused(cli: Cli) -> None:
    cli("start", "llm-pool-version-2", "--as", "alice")
    code, _, err = cli("resume", "llm-pool-version-2", "--as", "bob")
    assert code == EXIT_REFUSED and "is not paused" in err


def test_a_missing_kubeconfig_is_one_line_and_exit_2(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.cli import main

    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config either
    for argv in (["status", "llm-pool-version-2"],
                 ["status", "llm-pool-version-2", "--kubeconfig", str(tmp_path / "nope")]):
        out, err = io.StringIO(), io.StringIO()
        code = main(argv, out=out, err=err)
        assert code == EXIT_REFUSED
        lines = err.getvalue().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "kubeconfig" in lines[0]
        assert "Traceback" not in err.getvalue() + out.getvalue()

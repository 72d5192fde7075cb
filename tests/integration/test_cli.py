"""The break-glass CLI: the same service, the actor recorded as cli:<user>, kubectl agrees."""

from __future__ import annotations

import getpass
import io
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kubernetes import client

from bot.cli import EXIT_OK, EXIT_REFUSED, main
from rollout.adapters.kube.markers import FENCE, pointer
from rollout.adapters.tick_holds import RedisTickHolds
from rollout.domain.clock import ManualClock
from rollout.redis_connect import connect
from sandbox.redis_server import RedisServer
from tests.integration.conftest import Cli, unique_prefix
from tests.integration.gate_support import apply_as
from tests.support.real_cluster import RealCluster


def _kubectl_weights(kubeconfig: Path, route: str = "routes-to-llm") -> list[int]:
    done = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), "--request-timeout=10s", "get",
         "httproutes", route, "-n", "default", "-o", "json"],
        capture_output=True, text=True, check=True, timeout=30,
    )
    refs = json.loads(done.stdout)["spec"]["rules"][0]["backendRefs"]
    return [ref["weight"] for ref in refs]


def test_start_then_four_approvals_move_the_route_as_kubectl_sees_it(
    cli: Cli, cluster: RealCluster, tmp_path: Path
) -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: the weights are checked through kubectl")
    admin = cluster.write_admin_kubeconfig(tmp_path / "admin-kubeconfig")
    code, out, err = cli("start", "llm-pool-version-2", "--interval", "0s", "--as", "alice")
    assert code == EXIT_OK, err
    assert "started" in out and "awaits approval" in out
    seen = [_kubectl_weights(admin)]
    for _ in range(4):
        code, out, err = cli("approve", "llm-pool-version-2", "--as", "bob")
        assert code == EXIT_OK, err
        seen.append(_kubectl_weights(admin))
    assert seen == [[100, 0], [90, 10], [75, 25], [50, 50], [0, 100]]
    code, out, _ = cli("history", "llm-pool-version-2")
    lines = out.splitlines()
    assert "cli:alice started the rollout: llm-pool → llm-pool-version-2 on HTTPRoute " \
           "default/routes-to-llm rule 0" in lines[0]
    assert sum("cli:bob applied step" in line for line in lines) == 4
    assert "cli:bob approved step 1 (10%)" in out and "the rollout completed at step 4" in out
    assert "step_applied" not in out and " via " not in out
    assert f"(login {getpass.getuser()})" in lines[0]


def test_rollback_at_50_restores_100_0(cli: Cli, cluster: RealCluster) -> None:
    spec = cluster.get_object("gateway.networking.k8s.io", "v1", "httproutes", "default",
                                    "routes-to-llm")
    assert spec is not None
    cli("start", "llm-pool-version-2", "--interval", "0s", "--as", "alice")
    for _ in range(3):
        cli("approve", "llm-pool-version-2", "--as", "bob")
    code, out, _ = cli("rollback", "llm-pool-version-2", "--as", "bob", "--reason", "errors")
    assert code == EXIT_OK and "rolled back" in out
    after = cluster.get_object("gateway.networking.k8s.io", "v1", "httproutes",
                                     "default", "routes-to-llm")
    assert after is not None and after["spec"] == spec["spec"]
    code, out, _ = cli("status", "llm-pool-version-2")
    assert "rolled back" in out and "stable 100 / canary 0" in out


def test_node_update_through_the_cli(cli: Cli, cluster: RealCluster) -> None:
    code, _, err = cli("start", "llm-new", "--route", "llm-route", "--as", "alice")
    assert code == EXIT_OK, err
    route = cluster.get_object("gateway.networking.k8s.io", "v1", "httproutes",
                                     "default", "llm-route")
    assert route is not None
    assert [r["name"] for r in route["spec"]["rules"][0]["backendRefs"]] == ["llm", "llm-new"]
    code, _, _ = cli("rollback", "llm-new", "--as", "bob")
    route = cluster.get_object("gateway.networking.k8s.io", "v1", "httproutes",
                                     "default", "llm-route")
    assert route is not None
    assert [r["name"] for r in route["spec"]["rules"][0]["backendRefs"]] == ["llm"]


@pytest.mark.parametrize(("argv", "message"), [
    (["start", "llm-pool-version-2", "--steps", "50,10,100"], "strictly increase"),
    (["start", "llm-pool-version-2", "--steps", "10,50"], "must be 100"),
    (["start", "llm-pool-version-2", "--interval", "soon"], "invalid interval"),
    (["start", "llm-pool-version-2", "--interval", "30"],
     "interval 30 has no unit: write 30s, 30m or 30h"),
    (["start", "nope"], "InferencePool nope not found in namespace default (InferencePools in "
                        "default: llm, llm-new, llm-pool, llm-pool-version-2)"),
    (["start", "llm-pool-verison-2"], "; did you mean llm-pool-version-2?"),
    (["approve", "llm-pool-version-2"], "no rollout of llm-pool-version-2"),
])
def test_bad_input_is_refused_with_a_clear_line(cli: Cli, argv: list[str], message: str) -> None:
    code, out, err = cli(*argv)
    assert code == EXIT_REFUSED
    assert err.startswith("refused: ") and message in err
    assert len(err.splitlines()) == 1 and out == ""
    assert "Traceback" not in err + out


def test_a_mistyped_pool_of_a_running_rollout_gets_the_close_name(cli: Cli) -> None:
    cli("start", "llm-pool-version-2", "--as", "alice")
    code, _, err = cli("approve", "llm-pool-verison-2", "--as", "bob")
    assert code == EXIT_REFUSED
    assert "did you mean llm-pool-version-2? (rollouts in default: llm-pool-version-2)" in err


def test_read_verbs_print_json_for_scripts(cli: Cli) -> None:
    cli("start", "llm-pool-version-2", "--interval", "0s", "--as", "alice")
    cli("approve", "llm-pool-version-2", "--as", "bob")
    code, out, _ = cli("status", "llm-pool-version-2", "--output", "json")
    status = json.loads(out)
    assert code == EXIT_OK and status["rollout"]["phase"] == "baking"
    assert status["observed"]["pair"] == {"stable": 90, "canary": 10}
    assert status["rollout"]["id"].startswith("llm-pool-version-2-")
    code, out, _ = cli("history", "llm-pool-version-2", "-o", "json")
    events = json.loads(out)["events"]
    assert [e["action"] for e in events][:3] == ["started", "approved", "step_applied"]
    assert events[1]["actor"] == {"id": "cli:bob", "name": "cli:bob", "via": "cli",
                                  "channel": None, "login": getpass.getuser()}
    code, out, _ = cli("list", "--output", "json")
    assert [r["canary"] for r in json.loads(out)["rollouts"]] == ["llm-pool-version-2"]


def test_status_shows_the_full_id_and_no_internal_version(cli: Cli) -> None:
    cli("start", "llm-pool-version-2", "--as", "alice")
    _, out, _ = cli("status", "llm-pool-version-2")
    rollout_line = next(line for line in out.splitlines() if line.startswith("rollout "))
    assert rollout_line.split() == ["rollout", json.loads(
        cli("status", "llm-pool-version-2", "-o", "json")[1])["rollout"]["id"]]
    assert "(version" not in out


def test_status_says_while_a_throttle_holds_the_automatic_steps_back(
        cli: Cli, redis_server: RedisServer) -> None:
    """The scheduler (another process) recorded a hold: the CLI's status says why the steps
    are late, in text and JSON, until the hold's end."""
    cli("start", "llm-pool-version-2", "--as", "alice")
    clock = ManualClock(datetime.now(UTC))
    holds = RedisTickHolds(connect(redis_server.url), clock=clock,
                           prefix=os.environ["ROLLOUT_KEY_PREFIX"])
    until = (clock.now() + timedelta(minutes=5)).replace(microsecond=0)
    holds.hold(until)
    _, out, _ = cli("status", "llm-pool-version-2")
    assert (f"throttled automatic steps held back until {until:%H:%M:%S} UTC: the Kubernetes "
            "API is throttling the scheduler") in out.splitlines()
    _, out, _ = cli("status", "llm-pool-version-2", "-o", "json")
    assert datetime.fromisoformat(json.loads(out)["ticks_held_until"]) == until
    assert holds.held_until() == until
    clock.advance(300)  # by the reader's clock the hold is over
    assert holds.held_until() is None


def _fence_ahead(cluster: RealCluster) -> None:
    """The route carries a fencing token above any this Redis would grant now: a Redis that
    lost its counter and whose clock is behind the one that granted it."""
    admin = client.CustomObjectsApi(cluster.world.admin)
    admin.patch_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", "default", "httproutes", "routes-to-llm",
        [{"op": "add", "path": pointer(FENCE), "value": "5000000000000000"}],
        _content_type="application/json-patch+json")


def test_internals_are_logged_only_when_asked_not_printed_as_the_answer(
    cli: Cli, cluster: RealCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh Redis key prefix is a Redis that lost its counters: the route carries a higher
    fencing token than the new counter, and the bot raises its counter above it."""
    cli("start", "llm-pool-version-2", "--interval", "0s", "--as", "alice")
    cli("approve", "llm-pool-version-2", "--as", "bob")
    cli("rollback", "llm-pool-version-2", "--as", "bob")
    _fence_ahead(cluster)
    monkeypatch.setenv("ROLLOUT_KEY_PREFIX", unique_prefix())
    code, out, err = cli("start", "llm-pool-version-2", "--as", "alice")
    assert code == EXIT_OK, err
    assert err == "" and "fence" not in out
    cli("rollback", "llm-pool-version-2", "--as", "bob")
    _fence_ahead(cluster)
    monkeypatch.setenv("ROLLOUT_KEY_PREFIX", unique_prefix())
    code, out, err = cli("start", "llm-pool-version-2", "--as", "alice", "-v")
    assert code == EXIT_OK and "fence" not in out
    assert " WARNING rollout.service: fence counter of " in err


def test_list_shows_active_rollouts(cli: Cli) -> None:
    cli("start", "llm-pool-version-2", "--as", "alice")
    code, out, _ = cli("list")
    assert code == EXIT_OK and "llm-pool-version-2" in out and "awaiting approval" in out


def test_the_console_script_runs_as_a_process(cluster_kubeconfig: Path,
                                              redis_server: RedisServer) -> None:
    env_prefix = unique_prefix()
    done = subprocess.run(
        [sys.executable, "-m", "bot", "status", "llm-pool-version-2", "--kubeconfig",
         str(cluster_kubeconfig), "--redis-url", redis_server.url],
        check=False, capture_output=True, text=True, timeout=60,
        env={"ROLLOUT_KEY_PREFIX": env_prefix, "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert "no rollout of default/llm-pool-version-2 is recorded" in done.stdout


def test_a_start_reads_the_namespace_without_importing_core_v1_api(
        cluster_kubeconfig: Path, redis_server: RedisServer) -> None:
    """Its module imports every core model: about 2.5 s of each command's start. The start's
    gates list the namespace's Pods and Services (CoreLists) all the same."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "bot", "start", "llm-pool-version-2",
         "--as", "alice", "--kubeconfig", str(cluster_kubeconfig),
         "--redis-url", redis_server.url],
        check=False, capture_output=True, text=True, timeout=60,
        env={"ROLLOUT_KEY_PREFIX": unique_prefix(), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert "awaiting approval" in done.stdout, done.stdout
    imported = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert any(" bot.bootstrap" in line for line in imported)  # the probe sees the imports
    assert not [line for line in imported if "core_v1_api" in line]


def _watch(cli: Cli, between: list[tuple[str, ...]]) -> tuple[int, list[str], list[float]]:
    """`status --watch` with a poll that, instead of sleeping, runs the next command."""
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        code, _, err = cli(*between.pop(0))
        assert code == EXIT_OK, err

    out = io.StringIO()
    code = main(["status", "llm-pool-version-2", "-w", "--every", "5s", *cli.base],
                out=out, err=io.StringIO(), sleep=sleep)
    return code, out.getvalue().splitlines(), waits


def test_status_watch_follows_a_rollout_until_it_completes(cli: Cli) -> None:
    cli("start", "llm-pool-version-2", "--interval", "0s", "--as", "alice")
    approve = ("approve", "llm-pool-version-2", "--as", "bob")
    code, lines, waits = _watch(cli, [approve] * 4)
    assert code == EXIT_OK and waits == [5.0] * 4
    assert lines[0].startswith("rollout   llm-pool-version-2-")
    changes = [line for line in lines if line[:2].isdigit() and line[2] == ":"]
    assert [c.split("  ", 1)[1].split(" · ")[0] for c in changes] == [
        "llm-pool-version-2: baking at 10% (step 1/4)",
        "llm-pool-version-2: baking at 25% (step 2/4)",
        "llm-pool-version-2: baking at 50% (step 3/4)",
        "llm-pool-version-2: completed at 100% (step 4/4)",
    ]
    assert "cluster stable 75 / canary 25" in changes[1]


def test_status_watch_stops_at_a_pause_and_says_who_and_why(cli: Cli) -> None:
    cli("start", "llm-pool-version-2", "--interval", "0s", "--as", "alice")
    pause = ("pause", "llm-pool-version-2", "--as", "carol", "--reason", "p99 latency")
    code, lines, waits = _watch(cli, [pause])
    assert code == 1 and len(waits) == 1
    assert "paused by cli:carol: p99 latency" in lines[-1]


def test_status_watch_of_a_finished_rollout_prints_once_and_returns(cli: Cli) -> None:
    cli("start", "llm-pool-version-2", "--as", "alice")
    cli("rollback", "llm-pool-version-2", "--as", "bob")
    code, lines, waits = _watch(cli, [])
    assert code == 1 and waits == [] and any("rolled back" in line for line in lines)


def test_ctrl_c_ends_a_watch_quietly(cli: Cli) -> None:
    cli("start", "llm-pool-version-2", "--as", "alice")

    def interrupted(_seconds: float) -> None:
        raise KeyboardInterrupt

    out, err = io.StringIO(), io.StringIO()
    code = main(["status", "llm-pool-version-2", "--watch", *cli.base], out=out, err=err,
                sleep=interrupted)
    assert code == 130 and err.getvalue() == "" and "awaiting approval" in out.getvalue()


def test_an_automatic_plan_from_the_cli_needs_approve_plan_by_another_name(cli: Cli) -> None:
    code, out, err = cli("start", "llm-pool-version-2", "--auto", "--interval", "0s",
                         "--steps", "50,100", "--as", "alice")
    assert code == EXIT_OK, err
    assert "approve-plan" in out
    code, _, err = cli("approve-plan", "llm-pool-version-2", "--as", "alice")
    assert code == EXIT_REFUSED and "two-person rule" in err
    code, out, _ = cli("history", "llm-pool-version-2")  # the refusal is audited, as Slack's
    assert "cli:alice was refused `approve-plan`: cli:alice started this rollout" in out, out
    code, _, err = cli("approve", "llm-pool-version-2", "--as", "bob")
    assert code == EXIT_REFUSED and "approve-plan" in err
    code, out, err = cli("approve-plan", "llm-pool-version-2", "--as", "bob")
    assert code == EXIT_OK, err
    assert "approved the plan" in out
    code, out, _ = cli("history", "llm-pool-version-2")
    login = getpass.getuser()
    assert f"cli:bob approved the plan (automatic steps may apply) (login {login})" in out
    assert "cli:alice started the rollout" in out and f"(login {login})" in out


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


def test_an_approval_names_its_step_and_a_retry_approves_nothing_more(
    cli: Cli, cluster: RealCluster,
) -> None:
    code, _, err = cli("start", "llm-pool-version-2", "--interval", "0s", "--as", "alice")
    assert code == EXIT_OK, err
    code, out, err = cli("approve", "llm-pool-version-2", "--step", "1", "--as", "bob")
    assert code == EXIT_OK, err
    assert "step 1 (10%)" in out
    code, out, err = cli("approve", "llm-pool-version-2", "--step", "1", "--as", "bob")
    assert code == EXIT_OK, err
    assert "step 1 (10%) of llm-pool-version-2 is already applied; nothing to do" in out
    code, _, err = cli("approve", "llm-pool-version-2", "--step", "3", "--as", "bob")
    assert code == EXIT_REFUSED
    assert err.strip() == "refused: step 3 is not the pending step; step 2 (25%) is"
    route = cluster.get_object("gateway.networking.k8s.io", "v1", "httproutes", "default",
                               "routes-to-llm")
    assert route is not None
    assert [r["weight"] for r in route["spec"]["rules"][0]["backendRefs"]] == [90, 10]


def test_freeze_holds_starts_and_steps_until_unfreeze(cli: Cli, cluster: RealCluster) -> None:
    code, out, err = cli("freeze", "--reason", "incident 42", "--as", "carol")
    assert code == EXIT_OK, err
    assert "Rollouts are frozen by cli:carol" in out and "incident 42" in out
    code, out, err = cli("freeze", "--as", "dave")
    assert code == EXIT_REFUSED and "already frozen by cli:carol" in err
    code, _, err = cli("start", "llm-pool-version-2", "--interval", "0s", "--as", "alice")
    assert code == EXIT_REFUSED and "New rollouts wait until an approver runs unfreeze" in err
    code, out, _ = cli("status", "llm-pool-version-2", "--output", "json")
    assert json.loads(out)["freeze"]["reason"] == "incident 42"
    code, out, err = cli("unfreeze", "--as", "carol")
    assert code == EXIT_OK and "no longer frozen" in out, err
    code, _, err = cli("unfreeze", "--as", "carol")
    assert code == EXIT_REFUSED and "not frozen" in err
    code, _, err = cli("start", "llm-pool-version-2", "--interval", "0s", "--as", "alice")
    assert code == EXIT_OK, err


def test_allow_gitops_starts_on_a_route_argo_cd_keeps(cli: Cli, cluster: RealCluster) -> None:
    apply_as(cluster, "argocd-controller", (100, 0))
    code, _, err = cli("start", "llm-pool-version-2", "--as", "alice")
    assert code == EXIT_REFUSED
    assert "kept by Argo CD" in err and "--allow-gitops" in err
    code, out, err = cli("start", "llm-pool-version-2", "--allow-gitops", "--as", "alice")
    assert code == EXIT_OK and "started" in out, err

"""`--output json` on status, list and history: the data the text shows, as JSON a script
can read, and `--version`."""

from __future__ import annotations

import json

import pytest

from bot.cli import EXIT_OK, main
from tests.integration.conftest import Cli

POOL = "llm-pool-version-2"


def test_status_list_and_history_as_json(cli: Cli) -> None:
    assert cli("start", POOL, "--steps", "50,100", "--as", "alice")[0] == EXIT_OK
    assert cli("approve", POOL, "--as", "bob")[0] == EXIT_OK

    code, out, err = cli("status", POOL, "--output", "json")
    assert code == EXIT_OK, err
    status = json.loads(out)
    assert status["rollout"]["canary"] == POOL and status["rollout"]["step"] == 0
    assert status["observed"]["pair"] == {"stable": 50, "canary": 50}

    code, out, _ = cli("list", "-o", "json")
    (listed,) = json.loads(out)["rollouts"]
    assert listed["id"] == status["rollout"]["id"] and listed["phase"] == "baking"

    code, out, _ = cli("history", POOL, "-o", "json")
    events = json.loads(out)["events"]
    assert [(e["action"], e["actor"]["id"]) for e in events] == [
        ("started", "cli:alice"), ("approved", "cli:bob"), ("step_applied", "cli:bob")]
    assert all(e["rollout_id"] == listed["id"] for e in events)


def test_json_is_refused_on_a_verb_that_changes_things(cli: Cli) -> None:
    with pytest.raises(SystemExit) as exc:
        cli("approve", POOL, "--output", "json")
    assert exc.value.code == 2


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("rollout-bot 0.")

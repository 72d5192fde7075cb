"""`status --every`: how often `--watch` looks, and only with `--watch`. A bad value is
refused in one line before anything is asked of Redis or the cluster (none is reachable
here: an answer about either would mean the input was not checked first)."""

from __future__ import annotations

import io

import pytest

from bot.cli import EXIT_REFUSED, main
from bot.watch import watch_every

UNREACHABLE = ["--kubeconfig", "/nonexistent/kubeconfig", "--redis-url", "redis://127.0.0.1:1"]
POOL = "llm-pool-version-2"


def _cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main([*argv, *UNREACHABLE], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("argv", [
    ["status", POOL, "--every", "5s"],
    ["status", POOL, "--every=1m", "-o", "json"],
])
def test_every_without_watch_is_refused_not_ignored(argv: list[str]) -> None:
    """`status --every 5s` looked once, as if `--every` had not been typed."""
    code, out, err = _cli(argv)
    assert (code, out) == (EXIT_REFUSED, "")
    assert err == ("refused: `--every` is how often `--watch` looks; without `--watch` there "
                   "is one look: add `--watch` or drop `--every`\n")


@pytest.mark.parametrize(("every", "said"), [
    ("0", "`--every` wants a duration of at least 1s, like 2s or 1m, not `0`"),
    ("0s", "not `0s`"),
    ("soon", "invalid interval `soon`: use a number with s, m or h"),
    ("5", "interval 5 has no unit: write 5s, 5m or 5h"),
    ("-5s", "a duration cannot be negative"),
    ("\u0665s", "`--every` wants a duration like 90s, 15m or 2h, in the digits 0-9"),
])
def test_a_bad_every_with_watch_is_refused_in_one_line(every: str, said: str) -> None:
    """`--every 0` was taken as 1s without a word."""
    code, out, err = _cli(["status", POOL, "--watch", "--every", every])
    assert (code, out) == (EXIT_REFUSED, "")
    assert err.startswith("refused: ") and said in err and err.count("\n") == 1, err


def test_watch_looks_every_2s_unless_told() -> None:
    assert watch_every(None, watching=True) == 2.0
    assert watch_every(None, watching=False) == 2.0  # not watching: no look to space out
    assert watch_every("5s", watching=True) == 5
    assert watch_every("1m", watching=True) == 60

"""The image's contents, checked without a container runtime: the runtime lock holds no
development tool and has a hash for every pin; the wheel the Containerfile builds from the
copied folders carries the bot and none of the sandbox or the tests."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEV_TOOLS = {"pytest", "pytest-timeout", "hypothesis", "ruff", "mypy", "import-linter",
             "pip-tools", "cyclonedx-bom", "types-pyyaml"}
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)", re.MULTILINE)


def _pins(name: str) -> dict[str, str]:
    return {k.lower(): v for k, v in PIN.findall((ROOT / name).read_text())}


def _blocks(name: str) -> list[str]:
    return re.split(r"\n(?=[A-Za-z0-9])", (ROOT / name).read_text().split("\n\n", 1)[-1])


def test_the_runtime_lock_has_no_tools_and_every_pin_is_hashed() -> None:
    runtime = _pins("requirements.lock")
    assert {"slack-bolt", "kubernetes", "redis", "waitress"} <= set(runtime)
    assert not DEV_TOOLS & set(runtime)
    for name in ("requirements.lock", "requirements-dev.lock", "requirements-build.lock"):
        for block in _blocks(name):
            if PIN.match(block):
                assert "--hash=sha256:" in block, f"{name}: no hash for {block.split()[0]}"


def test_the_development_lock_pins_the_runtime_exactly_as_the_image_does() -> None:
    runtime, dev = _pins("requirements.lock"), _pins("requirements-dev.lock")
    assert {k: dev.get(k) for k in runtime} == runtime
    assert set(dev) >= DEV_TOOLS


def test_the_containerfile_copies_no_sandbox_and_pins_its_base() -> None:
    text = (ROOT / "deploy" / "Containerfile").read_text()
    copied = re.findall(r"^COPY (\S+)", text, re.MULTILINE)
    assert "sandbox" not in " ".join(copied) and "requirements-dev.lock" not in text
    assert re.search(r"^ARG BASE=python:3\.11-slim@sha256:[0-9a-f]{64}$", text, re.MULTILINE)
    assert "--require-hashes -r requirements.lock" in text


def test_the_wheel_built_from_the_copied_folders_has_no_sandbox(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for package in ("bot", "handlers", "rollout"):  # what the Containerfile copies
        shutil.copytree(ROOT / package, src / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp_path / "wheels"), str(src)],
                   check=True, capture_output=True, timeout=120)
    (wheel,) = (tmp_path / "wheels").glob("*.whl")
    tops = {n.split("/", 1)[0] for n in zipfile.ZipFile(wheel).namelist()}
    assert {"bot", "handlers", "rollout"} <= tops
    assert not {"sandbox", "tests", "bench"} & tops

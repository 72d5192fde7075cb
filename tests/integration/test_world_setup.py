"""A test world whose set-up fails leaves no server behind: the soak, given no CRDs to
install, once left its kube-apiserver and etcd running after it had exited."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.kube.crd_sources import UPSTREAM_ENV
from tests.support.crds import official_crds
from tests.support.real_cluster import KubeWorld


def _children() -> set[int]:
    """This process's live child processes, read from /proc."""
    mine = str(os.getpid())
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # ended meanwhile
            continue
        fields = stat.rpartition(")")[2].split()
        if fields[1] == mine and fields[0] != "Z":
            found.add(int(entry.name))
    return found


@pytest.fixture
def no_crds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(UPSTREAM_ENV, str(tmp_path))  # a directory with no CRD in it
    official_crds.cache_clear()
    yield
    monkeypatch.undo()
    official_crds.cache_clear()  # read again from the real copies by the next caller


@pytest.mark.usefixtures("no_crds")
def test_a_world_whose_crds_cannot_be_installed_stops_its_servers() -> None:
    before = _children()
    with pytest.raises(FileNotFoundError):  # the official CRDs are not where it was told
        KubeWorld()
    assert _children() == before

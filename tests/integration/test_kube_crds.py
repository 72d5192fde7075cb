"""The emulator's schemas: materialized from the pinned sources, and never silently missing."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from sandbox.kube import KubeEmulator, crds
from sandbox.kube.crd_sources import LLMD_CRDS, MODULE_CRDS, UPSTREAM_ENV
from sandbox.kube.server import CRDS_ENV
from tests.support.crds import upstream_copies_dir


def test_materialize_writes_every_official_crd(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(UPSTREAM_ENV, str(upstream_copies_dir()))
    assert crds.main([str(tmp_path / "crds")]) == 0
    written = sorted(p.name for p in (tmp_path / "crds").iterdir())
    assert written == sorted(e.name for e in (*MODULE_CRDS, *LLMD_CRDS))
    emulator = KubeEmulator(seed="empty", crds=tmp_path / "crds", controller=False)
    assert emulator.admission.unchecked_kinds() == []


def test_an_upstream_copy_that_does_not_match_its_digest_is_refused(tmp_path: Path) -> None:
    copies = tmp_path / "copies"
    shutil.copytree(upstream_copies_dir(), copies)
    name = LLMD_CRDS[0].name
    (copies / name).write_text((copies / name).read_text() + "\n# edited\n")
    with pytest.raises(crds.CrdSourceError, match="SHA-256"):
        crds.upstream_copy(copies, name)


def test_without_crds_the_emulator_says_which_kinds_it_cannot_validate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)  # no .sandbox/crds here
    monkeypatch.delenv(CRDS_ENV, raising=False)
    with caplog.at_level(logging.WARNING, logger="sandbox.kube.server"):
        emulator = KubeEmulator(seed="empty", controller=False)
    assert {t.kind for t in emulator.admission.unchecked_kinds()} == {
        "Gateway", "HTTPRoute", "InferencePool", "InferenceObjective", "InferenceModelRewrite"}
    assert "HTTPRoute.gateway.networking.k8s.io" in caplog.text
    assert "NOT validated" in caplog.text

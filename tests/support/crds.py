"""The official CRDs the test world installs, read from pinned upstream Go modules.

The list of modules, versions and files is the emulator's (`sandbox.kube.crd_sources`), so
the real server and the emulator are given the same CRDs. Each file comes from the Go module
cache (`go mod download -json MODULE@VERSION`, checked against the checksum database), never
from a copy in this project. Both API groups of the inference CRDs are installed, as older
clusters have them.

The llm-d router module (home of the `llm-d.ai` InferenceObjective and InferenceModelRewrite)
is refused by the Go module proxy this project's machines reach. Its two CRDs are then read
from the upstream copies beside the project (`../shared/crds`, or `ROLLOUT_UPSTREAM_CRDS`),
each checked against the SHA-256 that `SOURCES.md` there records for the pinned tag.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from sandbox.kube import crds
from sandbox.kube.crd_sources import UPSTREAM_ENV


def upstream_copies_dir() -> Path:
    explicit = os.environ.get(UPSTREAM_ENV)
    if explicit:
        return Path(explicit)
    return Path(__file__).resolve().parents[3] / "shared" / "crds"


@functools.cache
def official_crds() -> tuple[dict[str, Any], ...]:
    """Every CRD the test world installs, parsed."""
    texts = crds.official_texts(upstream_copies_dir())
    return tuple(crds.parse(text) for text in texts.values())

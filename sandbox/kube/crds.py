"""Materialize the official CRDs for the emulator, and read them back.

`python -m sandbox.crds [DIR]` writes every CRD of `crd_sources` into DIR (default
`.sandbox/crds`, not committed): module files come from the Go module cache through
`go mod download -json MODULE@VERSION`, which checks each module against the checksum
database; the llm-d.ai kinds fall back to verified upstream copies (see `crd_sources`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from sandbox.kube.crd_sources import LLMD_CRDS, MODULE_CRDS, UPSTREAM_ENV, ModuleFile

Obj = dict[str, Any]
DEFAULT_DIR = Path(".sandbox") / "crds"


class CrdSourceError(RuntimeError):
    """A CRD could not be obtained from its pinned source."""


def module_dir(module: str, version: str) -> Path:
    """The module's directory in the Go module cache (downloaded and verified if needed)."""
    go = shutil.which("go")
    if go is None:
        raise CrdSourceError("the Go toolchain ('go') is needed to read the CRDs")
    with tempfile.TemporaryDirectory() as scratch:  # outside any module: no go.mod consulted
        out = subprocess.run([go, "mod", "download", "-json", f"{module}@{version}"],
                             cwd=scratch, capture_output=True, text=True, timeout=600,
                             check=False)
    try:
        info = json.loads(out.stdout)
    except ValueError:
        raise CrdSourceError(f"cannot download {module}@{version}: {out.stderr.strip()}") \
            from None
    if "Error" in info or "Dir" not in info:
        raise CrdSourceError(f"cannot download {module}@{version}: {info.get('Error')}")
    return Path(info["Dir"])


def recorded_sha256(directory: Path) -> dict[str, str]:
    """File name to SHA-256, from the `SOURCES.md` beside upstream copies."""
    text = (directory / "SOURCES.md").read_text()
    return {name: digest for digest, name in re.findall(r"^([0-9a-f]{64})\s+(\S+)$", text,
                                                        flags=re.MULTILINE)}


def upstream_copy(directory: Path, name: str) -> str:
    """An upstream copy's text, refused unless it matches its recorded SHA-256."""
    data = (directory / name).read_bytes()
    if hashlib.sha256(data).hexdigest() != recorded_sha256(directory).get(name):
        raise CrdSourceError(f"{directory / name} does not match the SHA-256 in SOURCES.md")
    return data.decode()


def _module_text(entry: ModuleFile) -> str:
    return (module_dir(entry.module, entry.version) / entry.path).read_text()


def official_texts(upstream: Path | None = None) -> dict[str, str]:
    """File name to YAML text of every official CRD, from the pinned sources."""
    texts = {entry.name: _module_text(entry) for entry in MODULE_CRDS}
    for entry in LLMD_CRDS:
        try:
            texts[entry.name] = _module_text(entry)
        except CrdSourceError:
            copies = upstream or (Path(os.environ[UPSTREAM_ENV]) if os.environ.get(
                UPSTREAM_ENV) else None)
            if copies is None:
                raise CrdSourceError(
                    f"{entry.module}@{entry.version} is not served by the Go module proxy; "
                    f"set {UPSTREAM_ENV} to a directory of upstream copies with SOURCES.md"
                ) from None
            texts[entry.name] = upstream_copy(copies, entry.name)
    return texts


def parse(text: str) -> Obj:
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
        raise CrdSourceError("not a CustomResourceDefinition")
    return doc


def materialize(target: Path) -> list[Path]:
    """Write every official CRD into ``target``; return the files written."""
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in official_texts().items():
        parse(text)
        path = target / name
        path.write_text(text)
        written.append(path)
    return written


def load_dir(directory: Path) -> list[Obj]:
    """Every CustomResourceDefinition in the YAML files of ``directory``."""
    docs: list[Obj] = []
    for path in sorted(directory.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                docs.append(doc)
    return docs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.crds",
                                     description="write the official CRDs for the emulator")
    parser.add_argument("directory", nargs="?", default=str(DEFAULT_DIR))
    args = parser.parse_args(argv)
    try:
        written = materialize(Path(args.directory))
    except (CrdSourceError, OSError, subprocess.SubprocessError) as exc:
        print(f"cannot materialize the CRDs: {exc}", file=sys.stderr)
        return 1
    print(f"{len(written)} CRDs written to {args.directory}")
    return 0

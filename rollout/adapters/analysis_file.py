"""Loading analyses: ``ROLLOUT_ANALYSIS_FILE`` when set, else the one shipped in the package.

A bad file is refused whole, with the file, the line and what is wrong for every problem:
pydantic says where in the data, and the YAML node tree says on which line that is. A key
written twice in one mapping is refused too, from the node tree: YAML would keep the last.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from rollout.domain.analysis import AnalysisFile
from rollout.domain.errors import InvalidInput

DEFAULT_RESOURCE = "analyses/default.yaml"


class AnalysisFileError(InvalidInput):
    """The analysis file cannot be used; the message names the file and the line(s)."""


def load_default() -> AnalysisFile:
    """The analysis shipped with the bot (rollout/domain/analyses/default.yaml)."""
    text = resources.files("rollout.domain").joinpath(DEFAULT_RESOURCE).read_text("utf-8")
    return parse_analyses(text, source=f"<package>/{DEFAULT_RESOURCE}")


def load_analyses(path: str | Path | None) -> AnalysisFile:
    """The file at ``path``, or the shipped default when no path is given."""
    if path is None or not str(path).strip():
        return load_default()
    file = Path(path)
    try:
        text = file.read_text("utf-8")
    except OSError as exc:
        raise AnalysisFileError(f"{file}: cannot read the analysis file: "
                                f"{exc.strerror or exc}") from None
    return parse_analyses(text, source=str(file))


def parse_analyses(text: str, *, source: str) -> AnalysisFile:
    """Validate ``text``; AnalysisFileError lists ``source:line: where: what`` per problem."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise AnalysisFileError(f"{source}:{line}: not valid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise AnalysisFileError(f"{source}: not valid YAML: {exc}") from None
    if data is None:
        raise AnalysisFileError(f"{source}:1: the file is empty: it needs `default` and "
                                "`analyses`")
    duplicates = [f"{source}:{line}: {where}" for line, where in duplicate_keys(root)]
    if duplicates:
        raise AnalysisFileError("invalid analysis file:\n  " + "\n  ".join(duplicates))
    try:
        return AnalysisFile.written(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        problems = []
        for err in errors:
            loc = err.get("loc", ())
            if err.get("type") == "too_short" and any(
                    len(o["loc"]) > len(loc) and o["loc"][:len(loc)] == loc for o in errors):
                continue  # a list whose items were all refused is not "too short" as well
            line = line_of(root, loc)
            where = ".".join(str(part) for part in loc if _is_path(part)) or "(top level)"
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            problems.append(f"{source}:{line}: {where}: {msg}")
        raise AnalysisFileError("invalid analysis file:\n  " + "\n  ".join(problems)) from None


def _is_path(part: object) -> bool:
    """pydantic adds union members and validator names to a location; they are not keys."""
    return isinstance(part, int) or (isinstance(part, str) and "[" not in part
                                     and part not in ("str", "dict"))


def line_of(root: yaml.Node | None, loc: Sequence[int | str]) -> int:
    """The 1-based line of the deepest node ``loc`` reaches (a missing key: its mapping)."""
    node = root
    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        nxt: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    nxt = value
                    break
        elif (isinstance(node, yaml.SequenceNode) and isinstance(part, int)
              and 0 <= part < len(node.value)):
            nxt = node.value[part]
        if nxt is None:
            continue  # a union member, a validator name, or a key that is missing
        node = nxt
        line = node.start_mark.line + 1
    return line


_MERGE = "tag:yaml.org,2002:merge"


def duplicate_keys(root: yaml.Node | None) -> list[tuple[int, str]]:
    """Each key written twice in one mapping, as (line, "where: what"): YAML loaders keep
    the last silently, so `failure_limit: 0` then `failure_limit: 5` would read as 5."""
    found: list[tuple[int, str]] = []
    seen: set[int] = set()

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if id(node) in seen:  # an alias: its node was walked where it was anchored
            return
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, str(i)))
        elif isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], int] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != _MERGE:
                    line = key.start_mark.line + 1
                    if (key.tag, key.value) in first:
                        where = ".".join((*path, key.value))
                        found.append((line, f"{where}: the key `{key.value}` is written "
                                            f"twice (first at line {first[key.tag, key.value]}"
                                            "): write each key once"))
                    first.setdefault((key.tag, key.value), line)
                    walk(value, (*path, key.value))
                else:
                    walk(value, path)

    if root is not None:
        walk(root, ())
    return found

"""Reading a configuration file: YAML or JSON, every value's line and column, `${VAR}` references.

Pure apart from reading the file: the CLI uses it before anything reaches the server, so an
invalid file is reported with its file, line and column and changes nothing.

YAML is read with PyYAML's safe composer and turned into plain JSON values here, so that:
- anchors and aliases are refused (an alias bomb cannot expand in memory);
- duplicate keys are refused (YAML would silently keep the last one);
- timestamps stay the strings they were written as, and only JSON's scalar types come out.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 32

Path = tuple[str | int, ...]
# `${NAME}` is a reference; `$${` writes a literal `${`.
_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the file, at a place in it."""

    path: Path
    message: str
    line: int | None = None
    column: int | None = None

    def render(self, filename: str) -> str:
        where = f"{filename}:{self.line}:{self.column}" if self.line else filename
        dotted = format_path(self.path)
        return f"{where}: {dotted + ': ' if dotted else ''}{self.message}"


class SourceError(Exception):
    """The file cannot be used; ``problems`` says where and why."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


@dataclass
class Source:
    """A parsed file: its data and where each value was written (1-based line and column)."""

    data: Any
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: Path) -> tuple[int, int] | None:
        """The position of ``path``, or of its nearest ancestor written in the file."""
        for end in range(len(path), -1, -1):
            found = self.positions.get(path[:end])
            if found:
                return found
        return None

    def problem(self, path: Path, message: str) -> Problem:
        line, column = self.locate(path) or (None, None)
        return Problem(path, message, line, column)


def format_path(path: Path) -> str:
    """``("environments", "staging", "config", "reports", 0)`` →
    ``environments.staging.config.reports[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def read(filename: str) -> Source:
    """Read and parse a file (``-`` is standard input is not supported: a path is needed for
    line numbers to mean something)."""
    try:
        with open(filename, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise SourceError([Problem((), f"cannot read the file: {exc.strerror or exc}")]) from exc
    if len(raw) > MAX_FILE_BYTES:
        raise SourceError([Problem((), f"the file is larger than {MAX_FILE_BYTES} bytes")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError([Problem((), f"the file is not UTF-8 (byte {exc.start})")]) from exc
    return parse(text)


def parse(text: str) -> Source:
    """Parse YAML (JSON is YAML too) into JSON values with their positions."""
    if "\x00" in text:
        raise SourceError([Problem((), "the file contains a NUL character")])
    try:
        _check_depth(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        raise SourceError([Problem((), f"not valid YAML: {exc.problem}", line, column)]) from exc
    except yaml.YAMLError as exc:
        raise SourceError([Problem((), f"not valid YAML: {exc}")]) from exc
    if node is None:
        raise SourceError([Problem((), "the file is empty")])
    source = Source(data=None)
    problems: list[Problem] = []
    source.data = _value(node, (), source, problems, seen=set())
    if problems:
        raise SourceError(problems)
    return source


def _check_depth(text: str) -> None:
    """Refuse deep nesting from the event stream, before PyYAML's recursive composer sees it."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                mark = event.start_mark
                line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
                message = f"nested deeper than {MAX_DEPTH} levels"
                raise SourceError([Problem((), message, line, column)])
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


_SCALAR = yaml.SafeLoader("")


def _value(  # noqa: PLR0911 - one return per kind of node
    node: yaml.Node,
    path: Path,
    source: Source,
    problems: list[Problem],
    seen: set[int],
    key_at: tuple[int, int] | None = None,
) -> Any:
    if id(node) in seen:
        # An alias is the anchored node itself: report it where it is used (its key).
        position = key_at or (node.start_mark.line + 1, node.start_mark.column + 1)
        source.positions.setdefault(path, position)
        problems.append(Problem(path, "anchors and aliases are not supported", *position))
        return None
    position = (node.start_mark.line + 1, node.start_mark.column + 1)
    source.positions.setdefault(path, position)
    if len(path) > MAX_DEPTH:
        problems.append(Problem(path, f"nested deeper than {MAX_DEPTH} levels", *position))
        return None
    if isinstance(node, yaml.MappingNode):
        seen.add(id(node))
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if (
                not isinstance(key_node, yaml.ScalarNode)
                or key_node.tag == "tag:yaml.org,2002:merge"
            ):
                problems.append(Problem(path, "keys must be plain strings", *position))
                continue
            key = str(key_node.value)
            if key in out:
                line, column = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                problems.append(Problem((*path, key), f"duplicate key {key!r}", line, column))
                continue
            key_at = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = _value(value_node, (*path, key), source, problems, seen, key_at)
        return out
    if isinstance(node, yaml.SequenceNode):
        seen.add(id(node))
        return [
            _value(item, (*path, i), source, problems, seen) for i, item in enumerate(node.value)
        ]
    seen.add(id(node))
    if node.tag in (
        "tag:yaml.org,2002:int",
        "tag:yaml.org,2002:float",
        "tag:yaml.org,2002:bool",
        "tag:yaml.org,2002:null",
    ):
        value = _SCALAR.construct_object(node)
        if isinstance(value, float) and value != value:  # noqa: PLR0124 - NaN is not JSON
            problems.append(Problem(path, "NaN is not a number JSON can carry", *position))
        return value
    if node.tag in ("tag:yaml.org,2002:str", "tag:yaml.org,2002:timestamp"):
        return str(node.value)
    problems.append(Problem(path, f"unsupported YAML tag {node.tag}", *position))
    return None


# --- references ------------------------------------------------------------------------------


def without_references(value: str) -> str:
    """``value`` with every reference (and `$${` escape) taken out: what the file spells out."""
    return _REFERENCE.sub("", value)


def references(value: str) -> list[str]:
    """The variable names a string refers to."""
    return [m.group(1) for m in _REFERENCE.finditer(value) if m.group(0) != "$${"]


def resolve(source: Source, *, environ: Mapping[str, str] | None = None) -> Any:
    """A copy of the data with every `${VAR}` replaced by the applier's environment variable."""
    env = os.environ if environ is None else environ
    problems: list[Problem] = []

    def substitute(text: str, path: Path) -> str:
        def one(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            name = match.group(1)
            if not _VARIABLE.match(name):
                problems.append(source.problem(path, f"${{{name}}} is not a variable name"))
                return ""
            if name not in env:
                problems.append(source.problem(path, f"environment variable {name} is not set"))
                return ""
            return env[name]

        return _REFERENCE.sub(one, text)

    resolved = walk(source.data, substitute)
    if problems:
        raise SourceError(problems)
    return resolved


def walk(data: Any, on_string: Callable[[str, Path], Any], path: Path = ()) -> Any:
    """Rebuild ``data`` with every string replaced by ``on_string(value, path)``."""
    if isinstance(data, dict):
        return {k: walk(v, on_string, (*path, k)) for k, v in data.items()}
    if isinstance(data, list):
        return [walk(v, on_string, (*path, i)) for i, v in enumerate(data)]
    if isinstance(data, str):
        return on_string(data, path)
    return data

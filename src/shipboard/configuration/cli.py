"""`shipboard schema | diff | apply | export`: configuration kept as code (through the API).

The file is read, checked and its `${VAR}` references resolved here, before anything is sent:
an invalid file is reported with file, line and column (exit 2) and changes nothing. What the
server refuses in the file is mapped back to the same positions.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, NoReturn

import typer
import yaml

from shipboard.client import ApiError, Client
from shipboard.configuration import credentials, source
from shipboard.configuration.schemas import ConfigDocument
from shipboard.configuration.source import Problem, Source, SourceError
from shipboard.core.terminal import JsonFlag, printable

EXIT_CHANGES = 1
EXIT_INVALID = 2

FileOption = Annotated[
    str, typer.Option("-f", "--file", help="The configuration file (YAML or JSON)")
]
PruneOption = Annotated[
    bool,
    typer.Option(
        "--prune",
        help="Also delete alert rules and channels the file does not name (never environments)",
    ),
]


def schema() -> None:
    """Print the configuration file's JSON Schema (for editors and CI checks)."""
    print(json.dumps(document_schema(), indent=2))


def document_schema() -> dict[str, Any]:
    return ConfigDocument.model_json_schema()


def diff(file: FileOption, prune: PruneOption = False, as_json: JsonFlag = False) -> None:
    """Show what `apply` would change, object by object and field by field.

    Exit 0 when nothing would change, 1 when something would, 2 when the file is invalid."""
    parsed, document = _load(file)
    with Client.from_settings() as client:
        result = _call(
            client, parsed, file, "/api/v1/config/diff", {"document": document, "prune": prune}
        )
    _mask_references(result, parsed)
    if as_json:
        print(json.dumps(result))
    else:
        _print_changes(result["changes"], prune=prune)
    if result["changed"]:
        raise typer.Exit(EXIT_CHANGES)


def apply(
    file: FileOption,
    prune: PruneOption = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check and show the changes; write nothing")
    ] = False,
    expect_revision: Annotated[
        str | None,
        typer.Option(
            "--expect-revision",
            help="Refuse (exit 1) unless the live configuration is still at this revision "
            "(from `export` or `GET /api/v1/config`)",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Apply the file in one transaction, all or nothing, audited as one event (admin).

    Applying the same file twice changes nothing. Exit 2 when the file is invalid."""
    parsed, document = _load(file)
    body = {
        "document": document,
        "prune": prune,
        "dry_run": dry_run,
        "expect_revision": expect_revision,
    }
    with Client.from_settings() as client:
        result = _call(client, parsed, file, "/api/v1/config/apply", body)
    _mask_references(result, parsed)
    if as_json:
        print(json.dumps(result))
        return
    _print_changes(result["changes"], prune=prune)
    if result["applied"]:
        print(f"applied: revision {result['revision']} → {result['new_revision']}")
    elif dry_run:
        print(f"dry run: nothing written (revision {result['revision']})")


def export(
    output: Annotated[
        str | None, typer.Option("-o", "--output", help="Write to FILE instead of stdout")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="yaml or json")] = "yaml",
) -> None:
    """Write the live configuration as a file for `apply` (credentials as `${VAR}` references).

    The variables it refers to are listed on stderr: set them before `diff` or `apply`."""
    if fmt not in ("yaml", "json"):
        _fail([Problem((), f"--format must be yaml or json, not {fmt!r}")], "--format")
    with Client.from_settings() as client:
        live = client.get("/api/v1/config")
    header = f"# Shipboard configuration, revision {live['revision']}.\n"
    if live["variables"]:
        header += "# Set before diff/apply: " + ", ".join(live["variables"]) + "\n"
    if fmt == "json":
        text = json.dumps(live["document"], indent=2) + "\n"
    else:
        text = header + yaml.safe_dump(
            live["document"], sort_keys=False, allow_unicode=True, width=100
        )
    if output:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    if live["variables"]:
        print(
            "references: " + ", ".join(live["variables"]) + " (set them before diff or apply)",
            file=sys.stderr,
        )


def register(app: typer.Typer) -> None:
    """Add the four commands to the root command."""
    app.command("schema")(schema)
    app.command("diff")(diff)
    app.command("apply")(apply)
    app.command("export")(export)


# --- helpers ---------------------------------------------------------------------------------


def _load(file: str) -> tuple[Source, Any]:
    try:
        parsed = source.read(file)
        literal = _literal_credentials(parsed)
        if literal:
            raise SourceError(literal)
        return parsed, source.resolve(parsed)
    except SourceError as exc:
        _fail(exc.problems, file)


def _literal_credentials(parsed: Source) -> list[Problem]:
    found: list[Problem] = []

    def check(value: str, path: source.Path) -> str:
        bare = source.without_references(value)
        if credentials.is_credential(path, bare):
            found.append(
                parsed.problem(
                    path,
                    "a credential must not be written in the file: use a reference such as "
                    f"${{{credentials.variable_name(_named(parsed.data, path))}}}",
                )
            )
        return value

    source.walk(parsed.data, check)
    return found


def _named(data: Any, path: source.Path) -> source.Path:
    """``channels[2]`` becomes ``channels.<its name>``, so suggested variables read well."""
    if len(path) > 1 and path[0] in ("channels", "alert_rules") and isinstance(path[1], int):
        items = data.get(path[0]) if isinstance(data, dict) else None
        if isinstance(items, list) and path[1] < len(items) and isinstance(items[path[1]], dict):
            return (path[0], str(items[path[1]].get("name", path[1])), *path[2:])
    return path


def _mask_references(result: dict[str, Any], parsed: Source) -> None:
    """Show every value that came from a `${VAR}` as ``***``, credential or not: a file in a
    pull request must not be able to print the CI job's other variables into its log."""
    masked: set[tuple[str, str, str]] = set()
    kinds = {
        "environments": "environment",
        "integrations": "integration",
        "channels": "channel",
        "alert_rules": "alert_rule",
    }

    def note(value: str, path: source.Path) -> str:
        if len(path) > 2 and path[0] in kinds and source.references(value):
            named = _named(parsed.data, path)
            masked.add((kinds[str(path[0])], str(named[1]), source.format_path(path[2:])))
        return value

    source.walk(parsed.data, note)
    for change in result.get("changes", []):
        for field in change.get("fields", []):
            if (change["kind"], change["name"], field["path"]) in masked:
                for side in ("before", "after"):
                    if field[side] is not None:
                        field[side] = credentials.MASK


def _call(client: Client, parsed: Source, file: str, path: str, body: dict[str, Any]) -> Any:
    try:
        return client.request("POST", path, json=body)
    except ApiError as exc:
        if exc.status != 422:
            raise
        problems = []
        for error in exc.errors or []:
            loc = [p for p in error.get("loc", []) if p != "body"]
            if loc[:1] == ["document"]:
                where = tuple(loc[1:])
                problems.append(parsed.problem(where, str(error.get("msg", "invalid"))))
        if not problems:
            raise
        _fail(problems, file)


def _fail(problems: list[Problem], file: str) -> NoReturn:
    for problem in problems:
        print(f"error: {printable(problem.render(file))}", file=sys.stderr)
    raise typer.Exit(EXIT_INVALID)


_SYMBOL = {"create": "+", "update": "~", "delete": "-", "unmanaged": " "}


def _print_changes(changes: list[dict[str, Any]], *, prune: bool) -> None:
    counts = dict.fromkeys(("create", "update", "delete", "unmanaged"), 0)
    for change in changes:
        counts[change["action"]] += 1
        label = printable(f"{change['kind']} {change['name']}")
        if change["action"] == "unmanaged":
            print(
                f"  {label}: not in the file, kept"
                + (
                    ""
                    if prune
                    else " (--prune deletes it)"
                    if change["kind"] in ("alert_rule", "channel")
                    else ""
                )
            )
            continue
        print(f"{_SYMBOL[change['action']]} {label}")
        for field in change["fields"]:
            if change["action"] == "create":
                print(printable(f"    {field['path']}: {_show(field['after'])}"))
            else:
                print(
                    printable(
                        f"    {field['path']}: {_show(field['before'])} → {_show(field['after'])}"
                    )
                )
    if not any(counts[a] for a in ("create", "update", "delete")):
        print("no changes")
    else:
        print(
            f"{counts['create']} to create, {counts['update']} to update, "
            f"{counts['delete']} to delete"
        )


def _show(value: Any) -> str:
    # JSON escapes control characters, so a value cannot drive the terminal.
    return "(none)" if value is None else json.dumps(value)

"""The archive's manifest: what it holds, and how a database is checked against it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from shipboard import __version__
from shipboard.core.errors import InvalidInput
from shipboard.ops.backup.checksums import TableDigest, compare_partitions, compare_tables

FORMAT = "shipboard-backup"
FORMAT_VERSION = 1
CHECKSUM_ALGORITHM = "sha256-row-sum-v1"
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database.sqlite.gz"
PG_MEMBER = "database.pgdump"


@dataclass
class Manifest:
    backend: str
    schema_revision: str
    created_at: str
    shipboard_version: str
    server_version: str
    dump_name: str
    dump_bytes: int
    dump_sha256: str
    tables: dict[str, TableDigest]
    partitions: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables.values())

    def to_json(self) -> bytes:
        data = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": self.created_at,
            "shipboard_version": self.shipboard_version,
            "backend": self.backend,
            "server_version": self.server_version,
            "schema_revision": self.schema_revision,
            "checksum_algorithm": CHECKSUM_ALGORITHM,
            "dump": {"name": self.dump_name, "bytes": self.dump_bytes, "sha256": self.dump_sha256},
            "tables": {
                name: {"rows": d.rows, "checksum": d.checksum}
                for name, d in sorted(self.tables.items())
            },
            "partitions": dict(sorted(self.partitions.items())),
        }
        return json.dumps(data, indent=2).encode()


_HEX64 = re.compile(r"[0-9a-f]{64}")


def parse_manifest(raw: bytes) -> Manifest:
    """The manifest of an archive, or InvalidInput saying what is wrong with it."""

    def bad(why: str) -> InvalidInput:
        return InvalidInput(f"manifest.json {why}: the archive is damaged or not a backup")

    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise bad("is not valid JSON") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise bad(f"is not a {FORMAT} manifest")
    if data.get("format_version") != FORMAT_VERSION:
        raise InvalidInput(
            f"backup format version {data.get('format_version')!r} is not one Shipboard "
            f"{__version__} reads (it reads version {FORMAT_VERSION})"
        )
    if data.get("checksum_algorithm") != CHECKSUM_ALGORITHM:
        raise bad(f"names an unknown checksum algorithm {data.get('checksum_algorithm')!r}")
    backend = data.get("backend")
    if backend not in ("sqlite", "postgresql"):
        raise bad(f"names an unknown backend {backend!r}")
    dump = data.get("dump")
    if (
        not isinstance(dump, dict)
        or dump.get("name") not in (SQLITE_MEMBER, PG_MEMBER)
        or not _is_count(dump.get("bytes"))
        or not isinstance(dump.get("sha256"), str)
        or not _HEX64.fullmatch(dump["sha256"])
    ):
        raise bad("has no valid 'dump' entry")
    tables: dict[str, TableDigest] = {}
    raw_tables = data.get("tables")
    if not isinstance(raw_tables, dict) or not raw_tables:
        raise bad("lists no tables")
    for name, entry in raw_tables.items():
        if (
            not isinstance(entry, dict)
            or not _is_count(entry.get("rows"))
            or not isinstance(entry.get("checksum"), str)
            or not _HEX64.fullmatch(entry["checksum"])
        ):
            raise bad(f"has an invalid entry for table {name!r}")
        tables[str(name)] = TableDigest(entry["rows"], entry["checksum"])
    partitions = data.get("partitions") or {}
    if not isinstance(partitions, dict) or not all(_is_count(v) for v in partitions.values()):
        raise bad("has an invalid 'partitions' entry")
    for key in ("schema_revision", "created_at", "shipboard_version"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise bad(f"has no {key!r}")
    return Manifest(
        backend=backend,
        schema_revision=data["schema_revision"],
        created_at=data["created_at"],
        shipboard_version=data["shipboard_version"],
        server_version=str(data.get("server_version", "")),
        dump_name=dump["name"],
        dump_bytes=dump["bytes"],
        dump_sha256=dump["sha256"],
        tables=tables,
        partitions={str(k): int(v) for k, v in partitions.items()},
    )


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def manifest_problems(
    manifest: Manifest,
    revision: str | None,
    tables: dict[str, TableDigest],
    partitions: dict[str, int],
) -> list[str]:
    problems = []
    if revision != manifest.schema_revision:
        problems.append(
            f"schema revision {revision or 'none'}, the manifest says {manifest.schema_revision}"
        )
    problems += compare_tables(manifest.tables, tables, what="the manifest")
    if manifest.backend == "postgresql":
        problems += compare_partitions(manifest.partitions, partitions)
    return problems

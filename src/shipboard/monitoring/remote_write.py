"""Prometheus remote write 1.0: Shipboard's points as the ``WriteRequest`` that Prometheus,
VictoriaMetrics, Mimir, Thanos Receive and Cortex accept.

The message is small and fixed (prometheus/prompb ``remote.proto`` and ``types.proto``), so it is
encoded here by hand rather than through generated classes: ``WriteRequest{1: TimeSeries}``,
``TimeSeries{1: Label, 2: Sample}``, ``Label{1: name, 2: value}``,
``Sample{1: double value, 2: int64 timestamp_ms}``, snappy block-compressed. The spec's rules
that a sender must keep are kept by construction: every series has ``__name__``, its labels are
sorted by name with no duplicates and no empty values, and its samples are in time order.

Names cross from Shipboard's model (dots and dashes allowed, tags free-form) into Prometheus'
(``[a-zA-Z_:][a-zA-Z0-9_:]*`` for metrics, ``[a-zA-Z_][a-zA-Z0-9_]*`` for labels, ``__`` reserved)
by :func:`metric_name` and :func:`label_name`. Two different names can map to one; the mapping
reports that as a collision instead of silently merging series.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import cramjam

CONTENT_TYPE = "application/x-protobuf"
CONTENT_ENCODING = "snappy"
PROTOCOL_VERSION = "0.1.0"  # the header value remote write 1.0 senders send

_METRIC_OK = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_OK = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_INVALID_METRIC_CHARS = re.compile(r"[^a-zA-Z0-9_:]")
_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")
# Labels Shipboard sets itself on every series; a tag of the same name would silently replace
# one of them, so tags that map onto these are reported as collisions.
RESERVED_LABELS = frozenset({"__name__", "environment", "source"})


def metric_name(name: str) -> str:
    """``api.latency-p95`` → ``api_latency_p95``; a leading digit gets a ``_`` in front."""
    if _METRIC_OK.fullmatch(name):
        return name
    mapped = _INVALID_METRIC_CHARS.sub("_", name)
    return mapped if _METRIC_OK.fullmatch(mapped) else f"_{mapped}"


def label_name(name: str) -> str:
    """A tag key as a label name. Names starting ``__`` are Prometheus' own: they get a ``tag``
    prefix so that a tag can never set ``__name__`` or a relabelling directive."""
    mapped = name if _LABEL_OK.fullmatch(name) else _INVALID_LABEL_CHARS.sub("_", name)
    if not _LABEL_OK.fullmatch(mapped):
        mapped = f"_{mapped}"
    return f"tag{mapped}" if mapped.startswith("__") else mapped


@dataclass(frozen=True)
class Series:
    """One series to send: its labels (``__name__`` included) and its samples
    ``(timestamp_ms, value)``."""

    labels: tuple[tuple[str, str], ...]
    samples: tuple[tuple[int, float], ...]


@dataclass
class Mapped:
    """Series in Prometheus' terms, and what the mapping could not keep apart."""

    series: list[Series] = field(default_factory=list)
    collisions: list[str] = field(default_factory=list)


def series_for(
    *,
    name: str,
    environment: str,
    source: str,
    tags: Mapping[str, str],
    samples: Sequence[tuple[int, float]],
) -> tuple[Series, list[str]]:
    """The series of one Shipboard metric, labelled ``environment``, ``source`` and its tags,
    with the collisions the name mapping caused (each a sentence naming both sides)."""
    labels: dict[str, str] = {"__name__": metric_name(name), "environment": environment}
    if source:
        labels["source"] = source
    origin: dict[str, str] = {}
    collisions: list[str] = []
    for key in sorted(tags):
        value = tags[key]
        mapped = label_name(key)
        if mapped in RESERVED_LABELS:
            collisions.append(f"tag {key!r} of {name!r} maps to the reserved label {mapped!r}")
            continue
        if mapped in origin:
            collisions.append(
                f"tags {origin[mapped]!r} and {key!r} of {name!r} both map to label {mapped!r}"
            )
            continue
        origin[mapped] = key
        if value != "":  # an empty value means "no such label" in Prometheus
            labels[mapped] = value
    ordered = tuple(sorted(samples))
    return Series(labels=tuple(sorted(labels.items())), samples=ordered), collisions


def encode(series: Iterable[Series]) -> bytes:
    """The snappy-compressed ``WriteRequest`` carrying ``series``."""
    body = bytearray()
    for one in series:
        _field_bytes(body, 1, _time_series(one))
    return bytes(cramjam.snappy.compress_raw(bytes(body)))


def decode(payload: bytes) -> list[Series]:
    """The series of a snappy-compressed ``WriteRequest`` (for tests and diagnostics)."""
    data = bytes(cramjam.snappy.decompress_raw(payload))
    out: list[Series] = []
    for number, value in _fields(data):
        if number == 1 and isinstance(value, bytes):
            labels: list[tuple[str, str]] = []
            samples: list[tuple[int, float]] = []
            for inner, item in _fields(value):
                if inner == 1 and isinstance(item, bytes):
                    parts = dict(_fields(item))
                    labels.append((_text(parts.get(1)), _text(parts.get(2))))
                elif inner == 2 and isinstance(item, bytes):
                    parts = dict(_fields(item))
                    raw = parts.get(1, 0)
                    number_value = struct.unpack("<d", struct.pack("<Q", raw))[0]
                    stamp = parts.get(2, 0)
                    assert isinstance(stamp, int)
                    samples.append((stamp - (1 << 64) if stamp >= 1 << 63 else stamp, number_value))
            out.append(Series(labels=tuple(labels), samples=tuple(samples)))
    return out


def _time_series(one: Series) -> bytes:
    names = [k for k, _ in one.labels]
    if "__name__" not in names:
        raise ValueError("a series needs a __name__ label")
    if names != sorted(set(names)):
        raise ValueError("labels must be sorted by name, without duplicates")
    out = bytearray()
    for key, text in one.labels:
        label = bytearray()
        _field_bytes(label, 1, key.encode())
        _field_bytes(label, 2, text.encode())
        _field_bytes(out, 1, bytes(label))
    for stamp, value in one.samples:
        sample = bytearray()
        sample += _key(1, 1) + struct.pack("<d", value)
        sample += _key(2, 0) + _varint(stamp & ((1 << 64) - 1))
        _field_bytes(out, 2, bytes(sample))
    return bytes(out)


def _key(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field_bytes(out: bytearray, number: int, value: bytes) -> None:
    out += _key(number, 2) + _varint(len(value)) + value


def _fields(data: bytes) -> Iterable[tuple[int, int | bytes]]:
    at = 0
    while at < len(data):
        key, at = _read_varint(data, at)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, at = _read_varint(data, at)
            yield number, value
        elif wire_type == 1:
            yield number, struct.unpack_from("<Q", data, at)[0]
            at += 8
        elif wire_type == 2:
            length, at = _read_varint(data, at)
            yield number, data[at : at + length]
            at += length
        elif wire_type == 5:
            yield number, struct.unpack_from("<I", data, at)[0]
            at += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("truncated or overlong varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def _text(value: int | bytes | None) -> str:
    return value.decode() if isinstance(value, bytes) else ""


# Answers about Shipboard itself rather than about the batch: wrong or missing credentials
# (401, 407 from a proxy), credentials that may not write there or a wrong tenant (403), a wrong
# URL (404). The spec drops on every 4xx but 429; here the batch is kept and retried, because
# the same batch will be taken once the setting is fixed, and dropping it would lose every point
# forwarded until someone notices (docs/monitoring.md, Forwarding).
BLOCKING_STATUSES = frozenset({401, 403, 404, 407})
# Single-node VictoriaMetrics answers a wrong path with 400, not 404, and says so in the body;
# without this, a typo in the URL would drop every batch as bad data.
_WRONG_PATH = "unsupported path requested"


def blocks(status: int, body: str = "") -> bool:
    """Whether an answer says the store refuses Shipboard (its settings), not the batch."""
    return status in BLOCKING_STATUSES or (status == 400 and _WRONG_PATH in body)


def retryable(status: int, body: str = "") -> bool:
    """5xx and 429 (the spec), and the answers that say Shipboard is misconfigured
    (:func:`blocks`, a departure from the spec). Any other 4xx is a batch that no retry fixes
    (bad labels, samples out of order or too old, a body too large)."""
    return status >= 500 or status == 429 or blocks(status, body)

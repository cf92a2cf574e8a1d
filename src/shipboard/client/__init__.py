"""The Python client of the Shipboard API (httpx, synchronous), used by the CLI and by pipelines.

    from shipboard.client import Client

    with Client("https://shipboard.example", token) as shipboard:
        deployment = shipboard.create_deployment("staging", "1.4.0", "9fceb02")
        final = shipboard.wait_for_deployment(deployment.id)

Typed methods return the API's own pydantic schemas where the API has one. Errors: ``ApiError``
(a problem response, with its ``status``), ``ServerUnreachable`` (no answer, after retries),
``NoToken``. Requests that may safely be sent twice (GET, PUT, DELETE, and POSTs carrying an
``Idempotency-Key``) are retried with backoff on network errors and on 502/503/504; any request
is retried when the connection could not even be opened, since then nothing was sent.

The package: ``transport`` (HTTP, retries, events), ``api`` (``Client``, the typed methods),
``errors``, ``progress``. It imports ``config``, ``core`` and the request/response schemas of
the API it calls (``deployments.schemas``, ``performance.schemas``), nothing else of the server.
"""

from __future__ import annotations

from shipboard.client.api import Client
from shipboard.client.errors import (
    ApiError,
    NoToken,
    ServerUnreachable,
    invalid_input_is_usage,
    segment,
)
from shipboard.client.progress import (
    PROGRESS_MIN_BYTES,
    ProgressReader,
    progress_bar,
    progress_wanted,
)
from shipboard.client.transport import (
    BACKOFF_CAP_S,
    IDEMPOTENT_METHODS,
    RETRY_STATUSES,
    Transport,
    configure,
)

# Existing code and scripts know the client by this name.
ShipboardClient = Client
# The name the tests know the upload wrapper by.
_ProgressReader = ProgressReader

__all__ = [
    "BACKOFF_CAP_S",
    "IDEMPOTENT_METHODS",
    "PROGRESS_MIN_BYTES",
    "RETRY_STATUSES",
    "ApiError",
    "Client",
    "NoToken",
    "ProgressReader",
    "ServerUnreachable",
    "ShipboardClient",
    "Transport",
    "configure",
    "invalid_input_is_usage",
    "progress_bar",
    "progress_wanted",
    "segment",
]

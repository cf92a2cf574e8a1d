"""DNS is the edge of the machine: names a test invents resolve to the addresses it says."""

from __future__ import annotations

import socket
from typing import Any

METADATA = "169.254.169.254"


def fake_resolver(answers: dict[str, list[str]]) -> Any:
    """getaddrinfo for the names a test invents; any other name is an error, as in real DNS."""

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (
                socket.AF_INET6 if ":" in a else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (a, port),
            )
            for a in answers[host]
        ]

    return getaddrinfo

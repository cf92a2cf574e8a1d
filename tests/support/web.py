"""The web UI as a browser without JavaScript sees it: passwords, sign-in, CSRF tokens."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from sqlalchemy import Engine

from shipboard.auth import sessions
from shipboard.db.engine import system_transaction
from tests.support.databases import SYSTEM
from tests.support.live import Clients, LiveServer

PASSWORD = "correct horse battery"


def set_password(engine: Engine, name: str, password: str = PASSWORD) -> None:
    with system_transaction(engine) as session:
        sessions.set_password(session, name=name, password=password, audit_context=SYSTEM)


def browser(server: LiveServer) -> httpx.Client:
    """A cookie-keeping client that does not follow redirects, so a test sees each one."""
    return httpx.Client(base_url=server.base_url, follow_redirects=False, timeout=30)


def login(
    client: httpx.Client, name: str, password: str = PASSWORD, next_path: str = "/"
) -> httpx.Response:
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, form.text
    return client.post(
        "/login",
        data={
            "username": name,
            "password": password,
            "csrf_token": token.group(1),
            "next": next_path,
        },
    )


def csrf_of(page: httpx.Response) -> str:
    match = re.search(r'data-csrf="([^"]*)"', page.text)
    assert match
    return match.group(1)


@contextmanager
def signed_in(clients: Clients, engine: Engine, role: str) -> Iterator[httpx.Client]:
    """A browser signed in as the ``clients`` user of ``role``."""
    set_password(engine, f"{role}-user")
    with browser(clients.server) as client:
        assert login(client, f"{role}-user").status_code == 303
        yield client


def is_html_error(response: httpx.Response, status: int) -> bool:
    return response.status_code == status and "text/html" in response.headers["content-type"]

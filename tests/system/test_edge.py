"""The HTTP edge against hostile clients: bodies sent without (or with a wrong) token, JSON built
to blow up the parser, slow headers and idle bodies. A real `shipboard serve` process, measured
from outside (its RSS in /proc)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.live import Clients, free_port
from tests.support.problems import assert_problem

MB = 1024 * 1024
HEADER_TIMEOUT_S = 1.0
BODY_IDLE_TIMEOUT_S = 2.0


@dataclass
class Served:
    proc: subprocess.Popen[str]
    port: int
    token: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss(self) -> int:
        return _status_kb(self.proc.pid, "VmRSS") * 1024


def _status_kb(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    found = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    assert found, text
    return int(found.group(1))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``shipboard serve`` on a fresh SQLite home, with short edge timeouts."""
    home = tmp_path_factory.mktemp("edge-home")
    env = {
        **os.environ,
        "SHIPBOARD_HOME": str(home),
        "SHIPBOARD_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "SHIPBOARD_BODY_IDLE_TIMEOUT_S": str(BODY_IDLE_TIMEOUT_S),
    }
    env.pop("SHIPBOARD_DATABASE_URL", None)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "shipboard", "serve", "--no-worker", "--port", str(port)],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stderr is not None
        printed, token = "", None
        deadline = time.monotonic() + 90
        while token is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            printed += line
            found = re.search(r"(shp_[A-Za-z0-9_-]{20,})", line)
            token = found.group(1) if found else None
        assert token, printed
        # Keep reading stderr so a full pipe never blocks the server.
        threading.Thread(target=proc.stderr.read, daemon=True).start()
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield Served(proc, port, token)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _tiny_objects(size: int) -> bytes:
    """A JSON array of empty objects: 3 bytes each on the wire, ~70 bytes each once parsed."""
    count = (size - 2) // 3
    return b"[" + b"{}," * (count - 1) + b"{}]"


class _Peak:
    """Samples a process's RSS every 10 ms while it runs."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self.peak = served.rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.served.rss())
            time.sleep(0.01)

    def __enter__(self) -> _Peak:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.served.rss())


# --- bodies before authentication (issue 18 item 3) ------------------------------------------


def test_large_bodies_without_a_valid_token_are_refused_before_they_are_read(
    served: Served,
) -> None:
    body = _tiny_objects(60 * MB)
    with httpx.Client(base_url=served.url, timeout=60) as warm:
        warm.get("/healthz")
    before = served.rss()

    def attack(headers: dict[str, str]) -> int:
        with httpx.Client(base_url=served.url, timeout=60) as client:
            return client.post(
                "/api/v1/deployments",
                content=body,
                headers={"Content-Type": "application/json", **headers},
            ).status_code

    def streamed(headers: dict[str, str]) -> int:
        # No Content-Length: the cap has to hold while the body streams.
        def chunks() -> Iterator[bytes]:
            for start in range(0, len(body), MB):
                yield body[start : start + MB]

        with httpx.Client(base_url=served.url, timeout=60) as client:
            try:
                return client.post(
                    "/api/v1/deployments",
                    content=chunks(),
                    headers={"Content-Type": "application/json", **headers},
                ).status_code
            except httpx.TransportError:
                return 0  # the server answered and closed while the client still sent

    started = time.monotonic()
    with _Peak(served) as peak, ThreadPoolExecutor(6) as pool:
        statuses = list(
            pool.map(
                lambda job: job[0](job[1]),
                [
                    (attack, {}),
                    (attack, {"Authorization": "Bearer shp_" + "x" * 43}),
                    (attack, {"Authorization": "Bearer not-even-a-token"}),
                    (streamed, {}),
                    (streamed, {"Authorization": "Bearer shp_" + "y" * 43}),
                    (attack, {"Cookie": "shipboard_session=forged"}),
                ],
            )
        )
    elapsed = time.monotonic() - started
    growth = peak.peak - before
    print(f"no-token 60 MB bodies x6: {statuses} in {elapsed:.1f} s, RSS +{growth / MB:.1f} MiB")
    assert set(statuses) <= {401, 413, 0}, statuses
    assert 0 not in statuses[:3], statuses
    assert growth < 50 * MB, f"RSS grew {growth / MB:.0f} MiB"
    assert elapsed < 30


def test_an_authenticated_body_of_tiny_values_is_refused_before_it_is_parsed(
    served: Served,
) -> None:
    body = _tiny_objects(40 * MB)
    before = served.rss()
    with _Peak(served) as peak, httpx.Client(base_url=served.url, timeout=60) as client:
        response = client.post(
            "/api/v1/metrics",
            content=body,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {served.token}"},
        )
    growth = peak.peak - before
    print(
        f"authenticated 40 MB of tiny objects: {response.status_code}, RSS +{growth / MB:.1f} MiB"
    )
    assert_problem(response, 413)
    assert "JSON values" in str(response.json()["detail"])
    # The raw bytes are held (twice at most while they are checked), never 15x their size.
    assert growth < 4 * 40 * MB, f"RSS grew {growth / MB:.0f} MiB"


def test_small_anonymous_bodies_still_reach_their_routes(served: Served) -> None:
    with httpx.Client(base_url=served.url, timeout=30) as client:
        refused = client.post("/api/v1/deployments", json={"environment": "staging"})
        assert_problem(refused, 401)
        assert refused.headers["www-authenticate"] == "Bearer"
        too_big = client.post("/api/v1/deployments", content=b" " * (64 * 1024 + 1))
        assert_problem(too_big, 413)
        wrong = client.post(
            "/api/v1/deployments",
            json={"environment": "staging"},
            headers={"Authorization": "Bearer shp_" + "z" * 43},
        )
        assert_problem(wrong, 401)
        ok = client.post(
            "/api/v1/metrics",
            json={
                "metrics": [{"name": "edge", "value": 1, "environment": "staging", "source": "app"}]
            },
            headers={"Authorization": f"Bearer {served.token}"},
        )
        assert ok.status_code == 200, ok.text


# --- JSON depth (issue 18 item 11) ----------------------------------------------------------


def _nested(depth: int) -> object:
    value: object = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize("depth", [300, 65])
def test_deeply_nested_json_is_422_on_every_route(clients: Clients, depth: int) -> None:
    with clients.as_role("admin") as admin:
        deployment = admin.post(
            "/api/v1/deployments",
            json={"environment": "staging", "version": "1.0.0", "commit_sha": "a" * 40},
        )
        assert deployment.status_code == 201, deployment.text
        attempts = [
            admin.post(
                f"/api/v1/deployments/{deployment.json()['id']}/logs",
                json={
                    "logs": [
                        {
                            "level": "info",
                            "message": "hi",
                            "source": "s",
                            "metadata": _nested(depth),
                        }
                    ]
                },
            ),
            admin.patch("/api/v1/environments/staging", json={"config": _nested(depth)}),
            admin.post("/api/v1/metrics", json={"metrics": [_nested(depth)]}),
        ]
        for response in attempts:
            body = assert_problem(response, 422)
            assert "nested deeper than 64" in str(body["detail"]), body
        assert "a" not in admin.get("/api/v1/environments/staging").json()["config"]


def test_json_at_the_depth_limit_is_accepted(clients: Clients) -> None:
    with clients.as_role("admin") as admin:
        response = admin.patch("/api/v1/environments/staging", json={"config": {"n": _nested(60)}})
        assert response.status_code == 200, response.text


# --- slow clients (issue 18 item 18) --------------------------------------------------------


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closed the connection within ``seconds``, and what it sent."""
    sock.settimeout(0.2)
    received = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True, received
        if not chunk:
            return True, received
        received += chunk
    return False, received


def test_headers_sent_byte_by_byte_are_cut_off(served: Served) -> None:
    request = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: {'z' * 200}\r\n\r\n".encode()
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
        closed = False
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.05)
            if time.monotonic() - started > HEADER_TIMEOUT_S + 3:
                break
        if not closed:
            closed, _ = _closed_within(sock, 1)
    assert closed
    assert time.monotonic() - started < HEADER_TIMEOUT_S + 3


def test_a_silent_connection_is_closed(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
        closed, answer = _closed_within(sock, HEADER_TIMEOUT_S + 2)
    assert closed
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer


def test_an_idle_body_is_cut_off(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
        sock.sendall(
            b"POST /api/v1/metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Authorization: Bearer {served.token}\r\n".encode()
            + b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"metrics": ['
        )
        closed, _ = _closed_within(sock, BODY_IDLE_TIMEOUT_S + 2)
    assert closed


def test_a_slow_but_steady_body_and_keep_alive_requests_still_work(served: Served) -> None:
    payload = b'{"metrics": [{"name": "e", "value": 2, "environment": "staging", "source": "a"}]}'
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(
            b"POST /api/v1/metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Authorization: Bearer {served.token}\r\n".encode()
            + f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
        )
        for start in range(0, len(payload), 20):
            sock.sendall(payload[start : start + 20])
            time.sleep(BODY_IDLE_TIMEOUT_S / 3)
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 200"), answer


def test_oversized_headers_are_refused_before_they_are_held(served: Served) -> None:
    """Found in our own pass: httptools set no bound on header size, so one request line
    could make the server hold as many megabytes of headers as it sent within the deadline."""
    before = served.rss()
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
        sent = 0
        try:
            for _ in range(64):
                sock.sendall(b"a" * (256 * 1024))
                sent += 1
        except OSError:
            pass
        closed, answer = _closed_within(sock, 3)
    assert closed
    assert sent < 64, "the server kept reading 16 MB of headers"
    assert answer.startswith(b"HTTP/1.1 431"), answer[:100]
    assert served.rss() - before < 20 * MB
    with httpx.Client(base_url=served.url, timeout=10) as client:
        fine = client.get("/healthz", headers={"X-Large-But-Fine": "b" * 16_000})
        assert fine.status_code == 200

"""Live peers on loopback: Shipboard itself under uvicorn, an HTTP receiver, real Prometheus."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from shipboard.app import create_app
from shipboard.config import Settings
from shipboard.db.engine import create_db_engine


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], *, timeout: float = 20, interval: float = 0.05) -> Any:
    """Poll until ``predicate`` returns something truthy; fail with its last value otherwise."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value:
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last value: {value!r})")
        time.sleep(interval)
        value = predicate()
    return value


class LiveServer:
    """Shipboard served by uvicorn on a loopback port, in a thread of the test process."""

    def __init__(self, database_url: str, **overrides: Any) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        # A home this server made is removed when it stops; one passed in belongs to the caller.
        self._own_home = None if "home" in overrides else tempfile.mkdtemp(prefix="shipboard-home-")
        overrides.setdefault("home", self._own_home)
        settings = Settings(database_url=database_url, log_level="warning", **overrides)
        self.settings = settings
        self.engine = create_db_engine(database_url)
        self.app = create_app(settings, engine=self.engine)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.engine.dispose()
        if self._own_home is not None:
            shutil.rmtree(self._own_home, ignore_errors=True)


@dataclass
class Clients:
    """HTTP clients for one user per role, plus an anonymous one."""

    server: LiveServer
    tokens: dict[str, str]

    def as_role(self, role: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.Client(base_url=self.server.base_url, headers=headers, timeout=30)


class Receiver:
    """A local HTTP receiver that records requests and answers with scripted statuses."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses = list(statuses or [])
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append((dict(self.headers), body))
                self.send_response(outer.statuses.pop(0) if outer.statuses else 200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.requests]


class RecordingProxy:
    """A reverse proxy on loopback in front of a real store: it records each request's method,
    path and headers, passes the request on unchanged and answers with the store's answer, as
    the gateway in front of Mimir or Thanos would see Shipboard's requests."""

    # Hop-by-hop, or recomputed by whoever sends the request on.
    _NOT_PASSED = frozenset({"host", "connection", "keep-alive", "transfer-encoding", "te"})
    # httpx hands over the answer's body decoded: its length and encoding are new.
    _NOT_RETURNED = _NOT_PASSED | {"content-length", "content-encoding"}

    def __init__(self, upstream: str) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._upstream = httpx.Client(base_url=upstream, timeout=30)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _pass(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = dict(self.headers.items())
                outer.requests.append((self.command, self.path, headers))
                answer = outer._upstream.request(
                    self.command,
                    self.path,
                    content=body,
                    headers={
                        k: v
                        for k, v in headers.items()
                        if k.lower() not in outer._NOT_PASSED and k.lower() != "content-length"
                    },
                )
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() not in outer._NOT_RETURNED:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def do_GET(self) -> None:
                self._pass()

            def do_POST(self) -> None:
                self._pass()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def seen(self, path: str) -> list[dict[str, str]]:
        """The headers of every request to ``path`` (its query left out), in order."""
        return [h for _, p, h in self.requests if p.split("?", 1)[0] == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._upstream.close()


class PrometheusServer:
    """A real Prometheus (Debian's ``prometheus``) on a loopback port, with its own storage.

    It scrapes what ``scrape_configs`` (YAML text) says and exposes its own ``/metrics``; the
    process is stopped by its PID."""

    BINARY = shutil.which("prometheus") or "/usr/bin/prometheus"

    def __init__(self, directory: str, scrape_configs: str = "") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = os.path.join(directory, f"prometheus-{self.port}.yml")
        with open(config, "w") as out:
            out.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n")
            out.write(f"scrape_configs:\n{scrape_configs}" if scrape_configs else "")
        self.log = open(os.path.join(directory, f"prometheus-{self.port}.log"), "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                self.BINARY,
                f"--config.file={config}",
                f"--storage.tsdb.path={os.path.join(directory, f'tsdb-{self.port}')}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-remote-write-receiver",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"prometheus did not start; see {self.log.name}")
            time.sleep(0.1)

    def version(self) -> str:
        info = httpx.get(f"{self.url}/api/v1/status/buildinfo", timeout=5).json()
        return str(info["data"]["version"])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except Exception:  # noqa: BLE001 - it did not stop on SIGTERM: end it
                self.process.kill()
                self.process.wait(timeout=5)
        self.log.close()


class VictoriaMetrics:
    """A real single-node VictoriaMetrics (Debian's ``victoria-metrics``) on a loopback port,
    with its own data directory, stopped by its PID. ``restart()`` brings it back on the same
    port and data, as a store that went away and came back. With ``basic_auth`` (user,
    password) every endpoint but ``/health`` wants those credentials, as a store behind
    authentication does; ``auth`` is what a test's own requests pass."""

    BINARY = shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics"

    def __init__(self, directory: str, *, basic_auth: tuple[str, str] | None = None) -> None:
        self.directory = directory
        self.basic_auth = basic_auth
        self.auth = httpx.BasicAuth(*basic_auth) if basic_auth else None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.log = open(os.path.join(self.directory, f"vm-{self.port}.log"), "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                self.BINARY,
                f"-storageDataPath={os.path.join(self.directory, f'vm-{self.port}')}",
                f"-httpListenAddr=127.0.0.1:{self.port}",
                "-retentionPeriod=100y",
                # Queries see points as soon as they are flushed, not a minute later.
                "-search.latencyOffset=0s",
                "-search.disableCache",
                *self._auth_flags(),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"victoria-metrics did not start; see {self.log.name}")
            time.sleep(0.1)

    def _auth_flags(self) -> list[str]:
        if self.basic_auth is None:
            return []
        user, password = self.basic_auth
        return [f"-httpAuth.username={user}", f"-httpAuth.password={password}"]

    def flush(self) -> None:
        answer = httpx.get(f"{self.url}/internal/force_flush", auth=self.auth, timeout=10)
        answer.raise_for_status()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except Exception:  # noqa: BLE001 - it did not stop on SIGTERM: end it
                self.process.kill()
                self.process.wait(timeout=5)
        self.log.close()


class Alertmanager:
    """One real Alertmanager (Debian's ``prometheus-alertmanager``) on a loopback port, with
    ``config`` (YAML text), clustering off, storage in a temp dir; stopped by its PID."""

    BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")

    def __init__(self, config: str) -> None:
        if self.BINARY is None:
            if os.environ.get("CI"):
                pytest.fail("prometheus-alertmanager is not installed (.ci/run installs it)")
            pytest.skip("prometheus-alertmanager is not installed")
        self.dir = Path(tempfile.mkdtemp(prefix="shipboard-am-"))
        (self.dir / "alertmanager.yml").write_text(config)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (self.dir / "alertmanager.log").open("wb")
        self.process = subprocess.Popen(
            [
                str(self.BINARY),
                f"--config.file={self.dir / 'alertmanager.yml'}",
                f"--storage.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for(self._ready, timeout=20, interval=0.1)

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def alerts(self, alertname: str) -> list[dict[str, Any]]:
        """The alerts Alertmanager holds as active (or silenced) now, by name."""
        response = httpx.get(f"{self.url}/api/v2/alerts", timeout=5)
        response.raise_for_status()
        return [a for a in response.json() if a["labels"].get("alertname") == alertname]

    def version(self) -> str:
        return str(
            httpx.get(f"{self.url}/api/v2/status", timeout=5).json()["versionInfo"]["version"]
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

"""The `shipboard` command."""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError

from shipboard import __version__
from shipboard.auth.cli import tokens_app, users_app
from shipboard.client import (
    RETRY_STATUSES,
    ApiError,
    NoToken,
    ServerUnreachable,
    configure,
    progress_wanted,
)
from shipboard.config import check_public_url, get_settings
from shipboard.configuration.cli import register as register_config_commands
from shipboard.core.errors import Forbidden, InvalidInput, ShipboardError, Unauthorized
from shipboard.core.files import restrict_umask
from shipboard.core.memory import cap_malloc_arenas
from shipboard.core.terminal import console
from shipboard.db.cli import app as db_app
from shipboard.deployments.cli import register as register_deploy_commands
from shipboard.environments.cli import app as env_app
from shipboard.environments.seed_cli import seed as db_seed
from shipboard.integrations.cli import app as integrations_app
from shipboard.monitoring.cli import app as metrics_app
from shipboard.ops.cli import backup_app, db_copy, secrets_app
from shipboard.ops.config_check import config_app
from shipboard.ops.health_cli import db_health
from shipboard.ops.retention_cli import retention as db_retention
from shipboard.performance.cli import app as perf_app
from shipboard.reports.cli import app as report_app
from shipboard.security.cli import app as scan_app
from shipboard.users.cli import register as register_user_data_commands

app = typer.Typer(
    help="Shipboard: a self-hosted release control plane.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(db_app, name="db")
db_app.command("seed")(db_seed)
db_app.command("retention")(db_retention)
db_app.command("health")(db_health)
db_app.command("copy")(db_copy)
register_user_data_commands(users_app)
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(env_app, name="env")
app.add_typer(secrets_app, name="secrets")
app.add_typer(backup_app, name="backup")
app.add_typer(metrics_app, name="metrics")
app.add_typer(report_app, name="report")
app.add_typer(scan_app, name="scan")
app.add_typer(perf_app, name="perf")
app.add_typer(integrations_app, name="integrations")
app.add_typer(config_app, name="config")
register_config_commands(app)
register_deploy_commands(app)
err = console(stderr=True, soft_wrap=True)

# Exit codes a pipeline can branch on (DESIGN.md §4, issue #9).
EXIT_FAILED = 1  # a failed deployment, a blocking gate, or a request the server refused
EXIT_USAGE = 2  # the command line (or a local file it names) is wrong; nothing was sent
EXIT_AUTH = 3  # no token, an invalid one (401), or one without the right (403)
EXIT_UNREACHABLE = 4  # no answer from the server (or the database, for admin commands)
EXIT_BUG = 70  # EX_SOFTWARE: a bug in Shipboard's CLI, not something the caller did


def _version(value: bool) -> None:
    if value:
        print(f"shipboard {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
    url: Annotated[
        str | None,
        typer.Option("--url", help="Shipboard's URL for user commands (default: SHIPBOARD_URL)"),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help="API token (default: SHIPBOARD_TOKEN, which is better: arguments show in "
            "process lists)",
        ),
    ] = None,
) -> None:
    """Shipboard: a self-hosted release control plane.

    Exit codes: 0 ok, 1 failed (deployment, gate, refused request), 2 usage, 3 authentication
    or permission, 4 server unreachable."""
    configure(url=url, token=token)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    worker: Annotated[
        bool, typer.Option("--worker/--no-worker", help="Run the pipeline worker in-process")
    ] = True,
    ssl_certfile: Annotated[
        str | None,
        typer.Option(envvar="SHIPBOARD_SSL_CERTFILE", help="Serve HTTPS with this PEM certificate"),
    ] = None,
    ssl_keyfile: Annotated[
        str | None,
        typer.Option(envvar="SHIPBOARD_SSL_KEYFILE", help="The certificate's PEM private key"),
    ] = None,
) -> None:
    """Migrate, seed and serve the API and (unless --no-worker) run deployment pipelines.

    The first start on an empty database creates the user 'admin' and prints, once, its API
    token and a password for the web pages."""
    import uvicorn

    from shipboard.app import create_app
    from shipboard.core.slowclients import SlowClientGuard
    from shipboard.db.engine import create_db_engine
    from shipboard.ops.service import prepare_instance

    if bool(ssl_certfile) != bool(ssl_keyfile):
        raise InvalidInput("--ssl-certfile and --ssl-keyfile go together")
    cap_malloc_arenas()  # before any thread starts: each would take an arena of its own
    # From here on a signal is noted, never raised: KeyboardInterrupt in the middle of start-up
    # (an import, a migration, a thread starting) could leave the process hanging on exit.
    stopper = _Stopper()
    settings = get_settings()
    url = settings.effective_database_url
    engine = create_db_engine(
        url, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow
    )
    prepared = prepare_instance(engine, url)
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::") else host  # noqa: S104
    shown = f"[{shown}]" if ":" in shown else shown  # an IPv6 address, in a URL
    base = f"{'https' if ssl_certfile else 'http'}://{shown}:{port}"
    if settings.public_url is None:
        # Links in alerts and notifications point here unless SHIPBOARD_PUBLIC_URL says where
        # people reach this server (behind a proxy, say).
        settings = settings.model_copy(update={"public_url": check_public_url(base)})
    err.print(f"Shipboard {__version__} on {_describe(url)}")
    if prepared.seeded:
        err.print(f"seeded environments: {', '.join(prepared.seeded)}")
    err.print(f"API: {base}/api/v1   docs: {base}/docs")
    if prepared.admin_token:
        err.print("First start: created user 'admin'. Its API token (shown once, keep it safe):")
        err.print(f"  {prepared.admin_token}")
        err.print(
            f"  curl -H 'Authorization: Bearer {prepared.admin_token}' {base}/api/v1/environments"
        )
    if prepared.admin_password:
        err.print(f"Web: {base}/ — sign in as 'admin' with password {prepared.admin_password}")
        err.print("  (shown once; change it with: shipboard users set-password admin)")
    else:
        err.print(f"Web: {base}/login   (a password: shipboard users set-password NAME)")
        err.print("API: use an existing token, or make one: shipboard tokens create admin")
    application = create_app(settings, engine=engine)
    server = uvicorn.Server(
        uvicorn.Config(
            application,
            host=host,
            port=port,
            log_level="warning",
            # Ours: uvicorn's own lines go through the same JSON logging, request id included.
            log_config=None,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            # Behind a proxy that terminates TLS, X-Forwarded-Proto makes the scheme https
            # (secure cookies, HSTS), but only from the proxies named here.
            proxy_headers=True,
            forwarded_allow_ips=settings.forwarded_allow_ips,
            # A live log stream of a deployment that waits (for approval, say) never ends by
            # itself; without a bound, one open browser tab would hold a shutdown forever.
            timeout_graceful_shutdown=settings.shutdown_grace_s,
            # Slow headers and idle bodies close the connection (core/slowclients.py).
            http=SlowClientGuard.configured(
                header_timeout_s=settings.header_timeout_s,
                body_idle_timeout_s=settings.body_idle_timeout_s,
            ),
        )
    )
    stopper.server = server
    if stopper.signalled.is_set():
        return
    background: _Background | None = None
    try:
        if worker:
            background = _start_background(application, engine, settings)
            err.print("pipeline worker and alert scheduler: in-process")
        server.run()
        if not server.started and not stopper.signalled.is_set():
            raise typer.Exit(3)  # uvicorn said why (the port is taken, say)
    finally:
        stopper.draining.set()
        if background is not None:
            _drain(background)


@dataclass
class _Background:
    worker_thread: threading.Thread
    stop: threading.Event
    scheduler: Any
    scheduler_stop: threading.Event


def _start_background(application: Any, engine: Any, settings: Any) -> _Background:
    """The pipeline worker and the scheduler, in threads of this process."""
    from shipboard import background
    from shipboard.pipelines.worker import Worker, start_in_thread

    pipeline_worker = Worker(
        engine,
        application.state.keyring,
        scan_roots=settings.scan_roots.split(":"),
        scan_protected=settings.scan_protected,
        outbound=settings.outbound_policy,
        metrics_store=settings.metrics_store(),
    )
    scheduler = background.from_settings(engine, application.state.keyring, settings)

    def wake() -> None:
        pipeline_worker.wake.set()
        scheduler.wake()

    application.state.wake_worker = wake
    worker_thread, stop = start_in_thread(pipeline_worker)
    scheduler_stop = scheduler.start()
    # /readyz fails and /metrics reports it when one of them stops.
    application.state.background = {
        "pipeline worker": worker_thread,
        "scheduler": scheduler.thread,
    }
    application.state.scheduler = scheduler
    return _Background(worker_thread, stop, scheduler, scheduler_stop)


class _Stopper:
    """SIGTERM and SIGINT for ``serve``: noted during start-up, then they stop the server.

    While it serves, uvicorn takes the signals over: it stops taking connections, lets the
    requests under way finish, and then raises the signal again to the handler it found.
    Python's default would end the process right there, the in-process worker in the middle of
    a step; this one lets the worker finish the deployment it runs (``_drain``). A signal
    before uvicorn took over used to be swallowed, and the server then ran on; now start-up
    stops at its next step, or the server exits as soon as it runs. A second signal during
    start-up, or while draining, ends the process at once (a deployment under way then has its
    lease lapse: failed as "worker lost")."""

    def __init__(self) -> None:
        self.draining = threading.Event()
        self.signalled = threading.Event()
        self.server: Any = None
        for handled in (signal.SIGTERM, signal.SIGINT):
            signal.signal(handled, self._on_signal)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        # A second signal while start-up waits (a database that does not answer, say) or
        # while draining: the user means it.
        if self.draining.is_set() or (self.signalled.is_set() and self.server is None):
            raise SystemExit(128 + signum)
        self.signalled.set()
        if self.server is not None:
            self.server.should_exit = True


def _drain(running: _Background) -> None:
    running.stop.set()  # claims nothing more
    running.scheduler_stop.set()
    if running.worker_thread.is_alive():
        err.print("stopping: waiting for the deployment under way to finish")
    running.worker_thread.join()
    if running.scheduler.thread is not None:
        running.scheduler.thread.join(timeout=30)


@app.command("worker")
def worker_command(
    poll: Annotated[float, typer.Option(help="Seconds between looks for work when idle")] = 0.5,
    lease: Annotated[float, typer.Option(help="Seconds a claimed deployment's lease lasts")] = 30,
) -> None:
    """Run deployment pipelines (run as many as you like against one PostgreSQL)."""
    import signal
    import threading

    from shipboard.core.crypto import Keyring
    from shipboard.core.logging import configure_logging
    from shipboard.db.engine import create_db_engine
    from shipboard.pipelines.worker import Worker

    cap_malloc_arenas()
    settings = get_settings()
    configure_logging(settings)
    engine = create_db_engine(
        settings.effective_database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )
    keyring = Keyring.from_settings(settings.secret_keys, settings.home)
    stop = threading.Event()
    # SIGTERM finishes the step that runs and then stops; the lease is given up with it.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    err.print(f"worker on {_describe(settings.effective_database_url)}")
    from shipboard import background

    scheduler_stop = background.from_settings(engine, keyring, settings).start()
    try:
        Worker(
            engine,
            keyring,
            poll_s=poll,
            lease_s=lease,
            scan_roots=settings.scan_roots.split(":"),
            scan_protected=settings.scan_protected,
            outbound=settings.outbound_policy,
            metrics_store=settings.metrics_store(),
        ).run(stop)
    finally:
        scheduler_stop.set()


def _describe(url: str) -> str:
    if url.startswith("sqlite"):
        return "SQLite " + url.split("///", 1)[-1]
    # Never print the password of a PostgreSQL URL.
    from sqlalchemy.engine import make_url

    return "PostgreSQL " + make_url(url).render_as_string(hide_password=True)


# Raised before any request, InvalidInput means the arguments (or a file they name) are wrong.
_LOCAL_ERRORS: tuple[tuple[type[ShipboardError], int], ...] = (
    (NoToken, EXIT_AUTH),
    (Unauthorized, EXIT_AUTH),
    (Forbidden, EXIT_AUTH),
    (ServerUnreachable, EXIT_UNREACHABLE),
    (InvalidInput, EXIT_USAGE),
)


def exit_code(exc: ShipboardError) -> int:
    """The exit code for an error that ends a command."""
    if isinstance(exc, ApiError):
        if exc.status in (401, 403):
            return EXIT_AUTH
        # A proxy's 502/503/504 after every retry: the server behind it does not answer.
        return EXIT_UNREACHABLE if exc.status in RETRY_STATUSES else EXIT_FAILED
    for kind, code in _LOCAL_ERRORS:
        if isinstance(exc, kind):
            return code
    return EXIT_FAILED


_MISSING_DATABASE = re.compile(r'database "(?P<name>[^"]+)" does not exist')


def database_error(exc: OperationalError) -> str:
    """What to tell someone whose database did not open: a PostgreSQL database that is not
    there is named, with how to create it; anything else is unreachable."""
    missing = _MISSING_DATABASE.search(str(exc.orig))
    if missing:
        name = missing["name"]
        return (
            f"the PostgreSQL database {name!r} does not exist; create it with "
            f'`createdb {name}` (or `CREATE DATABASE "{name}";` in psql), then run '
            "`shipboard db upgrade`"
        )
    return f"database unreachable ({type(exc.orig).__name__}); check SHIPBOARD_DATABASE_URL"


def main() -> None:
    # Everything the command writes (the database, its WAL, backups, key files) is private.
    restrict_umask()
    # Progress bars are for people: not when output is piped, nor with --json (which commands
    # parse for themselves; the uploads of every command share this one decision).
    configure(progress=progress_wanted(as_json="--json" in sys.argv[1:]))
    try:
        app()
    except ShipboardError as exc:
        err.print(f"error: {exc.detail}")
        sys.exit(exit_code(exc))
    except OperationalError as exc:
        err.print(f"error: {database_error(exc)}")
        sys.exit(EXIT_UNREACHABLE)
    except Exception as exc:
        if isinstance(exc, ValidationError) and exc.title == "Settings":
            # A SHIPBOARD_* variable the settings refuse: the caller's to fix, not a bug.
            for problem in exc.errors():
                message = str(problem["msg"]).removeprefix("Value error, ")
                err.print(f"error: invalid setting {'.'.join(map(str, problem['loc']))}: {message}")
            sys.exit(EXIT_USAGE)
        # A bug, not a user error: keep the traceback for those who ask for it.
        if os.environ.get("SHIPBOARD_DEBUG"):
            raise
        err.print(
            f"error: internal error ({type(exc).__name__}: {exc}); "
            "run again with SHIPBOARD_DEBUG=1 for the traceback"
        )
        sys.exit(EXIT_BUG)

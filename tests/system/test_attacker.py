"""The attacker's checklist as tests: each section names an attack and shows it fails.

1. SQL injection in every query parameter      6. timing-safe comparison of every credential
2. path traversal in uploads and backups       7. credential brute force slowed to a 429
3. shell injection into pipeline steps         8. secrets absent from responses and logs
4. XSS in server-rendered pages                9. revoked, expired, disabled: refused at once
5. CSRF on every form and cookie-API write    10. viewers and write routes: test_authz_matrix

Every refusal is a 4xx (problem+json on the API, HTML on pages), never a 500.
"""

from __future__ import annotations

import ast
import asyncio
import hmac
import io
import json
import logging
import re
import tarfile
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import structlog
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy.engine import Engine

from shipboard.auth import service as auth
from shipboard.auth import sessions, totp
from shipboard.auth.models import ApiToken, WebSession
from shipboard.auth.schemas import Principal
from shipboard.core.errors import InvalidInput, Unauthorized
from shipboard.core.time import utcnow
from shipboard.db.engine import system_transaction
from tests.support.authz import BODIES, MATRIX, PATH_VALUES, QUERY, SIGNED
from tests.support.databases import SYSTEM, Database, DatabaseFactory
from tests.support.live import Clients, LiveServer, wait_for
from tests.support.paths import SRC
from tests.support.web import PASSWORD, browser, csrf_of, login, set_password


def _openapi(clients: Clients) -> dict[str, Any]:
    return dict(httpx.get(f"{clients.server.base_url}/openapi.json").json())


def _fill(template: str, values: dict[str, str]) -> str:
    path = template
    for placeholder, value in values.items():
        path = path.replace(placeholder, value)
    return path


def _rows(engine: Engine) -> dict[str, list[str]]:
    """Every row of every table, as text: a change anywhere shows as a difference."""
    snapshot: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for table in sorted(sa.inspect(conn).get_table_names()):
            if table == "web_sessions":
                query = "SELECT id_hash, csrf_token, user_id FROM web_sessions"
            else:
                query = f"SELECT * FROM {table}"
            snapshot[table] = sorted(repr(tuple(row)) for row in conn.execute(sa.text(query)))
    return snapshot


def _report(client: httpx.Client, environment: str = "staging", version: str = "1.0.0") -> str:
    """A deployment reported by CI (no pipeline runs): returns its id."""
    response = client.post(
        "/api/v1/deployments",
        json={"environment": environment, "version": version, "commit_sha": "abcdef1"},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _sarif(title: str, description: str) -> bytes:
    return json.dumps(
        {
            "version": "2.1.0",
            "runs": [
                {
                    "tool": {
                        "driver": {
                            "name": "attacker-check",
                            "rules": [{"id": "X1", "shortDescription": {"text": title}}],
                        }
                    },
                    "results": [
                        {
                            "ruleId": "X1",
                            "level": "error",
                            "message": {"text": description},
                            "locations": [
                                {
                                    "physicalLocation": {
                                        "artifactLocation": {"uri": "app.py"},
                                        "region": {"startLine": 3},
                                    }
                                }
                            ],
                        }
                    ],
                }
            ],
        }
    ).encode()


def _import_finding(client: httpx.Client, title: str, description: str) -> str:
    response = client.post(
        "/api/v1/security/scans/import",
        files={"file": ("r.sarif", _sarif(title, description), "application/json")},
        data={"environment": "staging"},
    )
    assert response.status_code == 201, response.text
    scan_id = response.json()["scan"]["id"]
    findings = client.get(f"/api/v1/security/scans/{scan_id}/findings").json()["items"]
    return str(findings[0]["id"])


# --- 1. SQL injection in every filter ------------------------------------------------------

SQL_PAYLOADS = (
    "' OR '1'='1",
    "1; DROP TABLE users--",
    "name) --",
    "%27",
    "' UNION SELECT name, role, NULL FROM users--",
    '" OR ""="',
    "\\'; SELECT pg_sleep(5)--",
    "ʼ OR 1=1 --",  # U+02BC, which some collations fold to an apostrophe
    "ｓｅｌｅｃｔ * ＦＲＯＭ users",
    "\x00' OR 1=1",
)


def test_sql_injection_in_every_query_parameter_changes_and_leaks_nothing(
    clients: Clients, engine: Engine
) -> None:
    """Classic payloads in every query parameter of every GET operation of the OpenAPI
    document: never a 500, never a row that a filter on that literal text could not match
    (all filters are bound parameters), and every table as it was."""
    with clients.as_role("deployer") as deployer:
        deployment = _report(deployer)
        deployer.post(
            f"/api/v1/deployments/{deployment}/logs",
            json={"logs": [{"level": "info", "message": "hello", "source": "ci"}]},
        ).raise_for_status()
    values = {**PATH_VALUES, "{deployment_id}": deployment}
    before = _rows(engine)
    operations = [
        (path, parameter["name"], op.get("parameters", []))
        for path, ops in _openapi(clients)["paths"].items()
        for method, op in ops.items()
        if method == "get"
        for parameter in op.get("parameters", [])
        if parameter["in"] == "query"
    ]
    assert len(operations) >= 50, "the OpenAPI document lost its query parameters?"
    failures: list[str] = []
    with clients.as_role("admin") as admin:
        for template, name, _ in operations:
            path = _fill(template, values)
            base = dict(QUERY.get(("GET", template), {}))
            for payload in SQL_PAYLOADS:
                response = admin.get(path, params={**base, name: payload})
                where = f"GET {path}?{name}={payload!r}: {response.status_code}"
                if response.status_code >= 500:
                    failures.append(f"{where} {response.text[:200]}")
                    continue
                if response.status_code >= 400:
                    if not response.headers["content-type"].startswith("application/problem+json"):
                        failures.append(f"{where} is not problem+json")
                    continue
                kind = response.headers["content-type"]
                if kind.startswith("application/json"):
                    body = response.json()
                    items = body.get("items") if isinstance(body, dict) else None
                    if items:
                        failures.append(f"{where} returned {len(items)} row(s) for injected text")
    assert not failures, "\n".join(failures)
    after = _rows(engine)
    assert set(after) == set(before), "a table appeared or disappeared"
    changed = [t for t in before if before[t] != after[t] and t != "audit_events"]
    assert not changed, f"reads changed {changed}"


# --- 2. path traversal in uploads and backups ------------------------------------------------

TRAVERSAL_NAMES = (
    "../../../../../../tmp/{marker}",
    "..\\..\\..\\..\\tmp\\{marker}",
    "/tmp/{marker}",  # noqa: S108 - the point
    "....//....//tmp/{marker}",
)


def test_upload_filenames_are_never_paths(clients: Clients, engine: Engine) -> None:
    """Multipart filenames (security and performance imports, API and page) are ignored: the
    content is parsed in memory; no file appears where a ``../`` name points."""
    marker = f"shipboard-traversal-{uuid.uuid4().hex}"
    csv = b"name,value,unit\nlatency,12.5,ms\n"
    with clients.as_role("admin") as admin:
        for template in TRAVERSAL_NAMES:
            filename = template.format(marker=marker)
            security = admin.post(
                "/api/v1/security/scans/import",
                files={"file": (filename, _sarif("t", "d"), "application/json")},
                data={"environment": "staging"},
            )
            assert security.status_code == 201, security.text
            performance = admin.post(
                "/api/v1/performance/import",
                files={"file": (filename, csv, "text/csv")},
                data={"environment": "staging"},
            )
            assert performance.status_code < 500, performance.text
            assert filename not in security.text + performance.text
    set_password(engine, "admin-user")
    with browser(clients.server) as client:
        login(client, "admin-user")
        page = client.post(
            "/security/import",
            data={"csrf_token": csrf_of(client.get("/security")), "environment": "staging"},
            files={"file": (f"../../../tmp/{marker}", _sarif("t", "d"), "application/json")},
        )
        assert page.status_code == 303, page.text
    for root in (Path("/tmp"), Path.cwd(), Path.cwd().parent, clients.server.settings.home):  # noqa: S108
        assert not list(Path(root).glob(f"*{marker}*")), f"a file named after the upload in {root}"
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT count(*) FROM security_scans")).scalar_one()
    assert stored == len(TRAVERSAL_NAMES) + 1


def test_scan_targets_outside_the_roots_are_refused(clients: Clients, tmp_path: Path) -> None:
    """A scanner run takes a path: ``..`` and symlinks out of SHIPBOARD_SCAN_ROOTS are 422."""
    from shipboard.security.scanners import ScanError, allowed_target

    root = Path(clients.server.settings.scan_roots.split(":")[0]).resolve()
    with clients.as_role("admin") as admin:
        for target in (f"{root}/../../../etc/passwd", "../../../../etc", "/etc/passwd", "a\x00b"):
            response = admin.post(
                "/api/v1/security/scans",
                json={"type": "sast", "environment": "staging", "target": target},
            )
            assert response.status_code == 422, (target, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
        assert admin.get("/api/v1/security/scans").json()["items"] == []
    inside = tmp_path / "root"
    inside.mkdir()
    (inside / "escape").symlink_to("/etc")
    assert allowed_target(str(inside / "ok"), [str(inside)]) == inside / "ok"
    with pytest.raises(ScanError):
        allowed_target(str(inside / "escape" / "passwd"), [str(inside)])


def test_backup_archives_cannot_write_outside_their_scratch_directory(
    databases: DatabaseFactory, tmp_path: Path
) -> None:
    """Tar slip: an archive whose dump member (or the manifest's name for it) is ``../…`` or
    absolute is refused before anything is written."""
    from shipboard.ops.backup.archive import read_archive
    from shipboard.ops.backup.create import create_backup
    from tests.support.populate import small_database

    archive = tmp_path / "good.tar"
    create_backup(small_database(databases, "sqlite").url, output=archive)
    with tarfile.open(archive) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]
    absolute = "/tmp/escaped-shipboard.db"  # noqa: S108 - the point
    evil_names = ("../../escaped.db", absolute, "sub/../../escaped.db")
    for index, evil in enumerate(evil_names):
        for rename_in_manifest in (False, True):
            forged = tmp_path / f"forged-{index}-{rename_in_manifest}.tar"
            with tarfile.open(forged, "w", format=tarfile.PAX_FORMAT) as out:
                for member, original in members:
                    data = original
                    if member.name == "manifest.json" and rename_in_manifest:
                        manifest = json.loads(original)
                        manifest["dump"]["name"] = evil
                        data = json.dumps(manifest).encode()
                    elif member.name != "manifest.json":
                        member.name = evil
                    member.size = len(data)
                    out.addfile(member, io.BytesIO(data))
            scratch = tmp_path / f"scratch-{index}-{rename_in_manifest}" / "a" / "b"
            scratch.mkdir(parents=True)
            with pytest.raises(InvalidInput):
                read_archive(forged, scratch)
            assert not (scratch.parent.parent / "escaped.db").exists()
            assert not (tmp_path / "escaped.db").exists()
            assert not Path(absolute).exists()
            assert list(scratch.iterdir()) == []


# --- 3. shell injection into pipeline steps ---------------------------------------------------

SHELL_PAYLOADS = ("$(touch {m}-a)", "`touch {m}-b`", "; touch {m}-c", "| touch {m}-d", "$((1+1))")


def test_request_fields_with_shell_syntax_are_refused_before_any_step(
    clients: Clients, tmp_path: Path
) -> None:
    """Version, commit sha and environment are validated at the API: shell syntax is a 422
    and no deployment exists to run."""
    marker = tmp_path / "pwned"
    with clients.as_role("deployer") as client:
        for payload in SHELL_PAYLOADS:
            text = payload.format(m=marker)
            for field in ("version", "commit_sha", "environment"):
                body = {"environment": "staging", "version": "1.0.0", "commit_sha": "abcdef1"}
                body[field] = text
                response = client.post("/api/v1/deployments", json=body)
                assert response.status_code == 422, (field, text, response.text)
        assert client.get("/api/v1/deployments").json()["items"] == []
    assert not list(tmp_path.iterdir())


def test_step_sees_hostile_values_as_literal_environment_variables(
    clients: Clients, worker: Any, tmp_path: Path
) -> None:
    """Values an admin or CI controls (step env, environment secrets, the version) reach a
    step only as environment variables: the shell never re-reads them as code, and log lines
    with shell syntax are stored, not run."""
    marker = tmp_path / "pwned"
    payload = "; ".join(p.format(m=marker) for p in SHELL_PAYLOADS) + " & 'quote\" \\back"
    secret = f"$(touch {marker}-secret) `touch {marker}-tick`"
    seen = tmp_path / "seen"
    script = (
        f'printf %s "$PAYLOAD" > {seen}-payload; printf %s "$HOSTILE_SECRET" > {seen}-secret; '
        f'printf %s "$SHIPBOARD_VERSION" > {seen}-version; echo $PAYLOAD; echo "$PAYLOAD"'
    )
    with clients.as_role("admin") as admin:
        admin.put(
            "/api/v1/environments/staging/secrets/HOSTILE_SECRET", json={"value": secret}
        ).raise_for_status()
        pipeline = {
            "steps": [
                {"name": "ship", "stage": "deploy", "run": script, "env": {"PAYLOAD": payload}}
            ]
        }
        response = admin.patch(
            "/api/v1/environments/staging", json={"config": {"pipeline": pipeline}}
        )
        assert response.status_code == 200, response.text
        created = admin.post(
            "/api/v1/deployments",
            json={"environment": "staging", "version": "1.0.0+b_7-rc", "commit_sha": "abcdef1"},
        )
        assert created.status_code == 201, created.text
        did = created.json()["id"]
        logged = admin.post(
            f"/api/v1/deployments/{did}/logs",
            json={"logs": [{"level": "info", "message": payload, "source": "$(touch x)"}]},
        )
        assert logged.status_code < 500, logged.text

        def final() -> dict[str, Any] | None:
            detail = admin.get(f"/api/v1/deployments/{did}").json()
            return detail if detail["status"] in ("success", "failed", "rolled_back") else None

        assert wait_for(final, timeout=30)["status"] == "success"
        lines = admin.get(f"/api/v1/deployments/{did}/logs", params={"limit": 500}).json()
    assert Path(f"{seen}-payload").read_text() == payload
    assert Path(f"{seen}-secret").read_text() == secret
    assert Path(f"{seen}-version").read_text() == "1.0.0+b_7-rc"
    assert payload in [line["message"] for line in lines["items"]]
    created_files = sorted(p.name for p in tmp_path.iterdir())
    assert created_files == ["seen-payload", "seen-secret", "seen-version"], created_files


# --- 4. XSS in server-rendered pages -----------------------------------------------------------

XSS = '<script>alert("xss")</script>"><img src=x onerror=alert(1)>'
ESCAPED = (
    "&lt;script&gt;alert(&#34;xss&#34;)&lt;/script&gt;&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"
)


def test_hostile_text_is_escaped_on_every_page_that_shows_it(
    clients: Clients, engine: Engine
) -> None:
    """Log lines, finding titles and descriptions, silence comments, environment config,
    audit details and a ``javascript:`` logs URL: escaped text, never markup or a link, and
    every page carries the Content-Security-Policy."""
    with clients.as_role("admin") as admin:
        created = admin.post(
            "/api/v1/deployments",
            json={
                "environment": "staging",
                "version": "1.0.0",
                "commit_sha": "abcdef1",
                "logs_url": "javascript:alert(document.cookie)",
            },
        )
        assert created.status_code == 201, created.text
        did = created.json()["id"]
        admin.post(
            f"/api/v1/deployments/{did}/logs",
            json={"logs": [{"level": "error", "message": XSS, "source": XSS[:200]}]},
        ).raise_for_status()
        finding = _import_finding(admin, XSS, XSS)
        admin.post(
            "/api/v1/silences",
            json={
                "matchers": [{"name": "environment", "value": XSS}],
                "ends_at": "2099-01-01T00:00:00Z",
                "comment": XSS,
            },
        ).raise_for_status()
        admin.patch(
            "/api/v1/environments/staging", json={"config": {"note": XSS}}
        ).raise_for_status()
    set_password(engine, "admin-user")
    pages = [
        f"/deployments/{did}",
        "/deployments",
        f"/security/findings/{finding}",
        "/security?environment=staging",
        "/monitoring?environment=staging",
        "/environments/staging",
        "/audit",
        f"/deployments?environment={XSS}",
        f"/login?next={XSS}",
    ]
    with browser(clients.server) as client:
        login(client, "admin-user")
        for path in pages:
            page = client.get(path)
            assert page.status_code < 500, (path, page.text[:300])
            assert "text/html" in page.headers["content-type"], path
            csp = page.headers.get("content-security-policy", "")
            assert "script-src 'self'" in csp, (path, csp)
            assert "<script>alert" not in page.text, path
            assert "<img src=x" not in page.text, path
            assert not re.search(r"""href\s*=\s*["']?\s*javascript:""", page.text, re.I), path
        shown = {path: client.get(path).text for path in pages[:6]}
    assert ESCAPED in shown[f"/deployments/{did}"]  # the log line
    assert "javascript:alert(document.cookie)" in shown[f"/deployments/{did}"]  # as text
    assert shown[f"/security/findings/{finding}"].count(ESCAPED) >= 2  # title, description
    assert ESCAPED in shown["/monitoring?environment=staging"]


# --- 5. CSRF on every form and every cookie-authenticated API write ---------------------------

# Sign-in forms have no session yet; each has its own defence, tested below.
CSRF_EXEMPT = {
    ("POST", "/login"): "double-submit cookie (test_login_form_needs_its_double_submit_cookie)",
    ("POST", "/login/code"): "the pending cookie is SameSite=Lax and useless without the code",
}
FORM_FIELDS: dict[str, dict[str, str]] = {
    "/environments/{name}/features/{flag}": {"enabled": "true"},
    "/environments/{name}/secrets": {"key": "CSRF_KEY", "value": "csrf-value"},
    "/monitoring/silences": {"matchers": "environment=staging", "duration": "1h", "comment": "c"},
    "/security/findings/{finding_id}/triage": {"status": "fixed", "reason": "csrf"},
    "/account/totp/confirm": {"code": "123456"},
    "/account/totp": {"password": "correct horse battery"},
    "/account/totp/remove": {"password": "correct horse battery"},
    "/security/import": {"environment": "staging"},
}
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _all_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every route the app serves, through included routers."""

    def walk(routes: list[Any], prefix: str) -> Iterator[tuple[str, str]]:
        for route in routes:
            inner = getattr(route, "original_router", None)
            if inner is not None:  # FastAPI ≥ 0.16x keeps included routers as they are
                yield from walk(inner.routes, prefix + route.include_context.prefix)
            elif isinstance(route, APIRoute):
                for method in route.methods:
                    yield method, prefix + route.path

    return sorted(set(walk(list(app.routes), "")))


def web_write_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Write routes outside the OpenAPI document: the pages' forms."""
    documented = {
        (method.upper(), path) for path, ops in app.openapi()["paths"].items() for method in ops
    }
    return {
        (method, path)
        for method, path in _all_routes(app)
        if method in WRITE_METHODS and (method, path) not in documented
    }


def test_route_enumeration_finds_the_forms(clients: Clients) -> None:
    routes = web_write_routes(clients.server.app)
    assert {("POST", "/logout"), ("POST", "/security/import"), *CSRF_EXEMPT} <= routes
    assert not any(path.startswith("/api/") for _, path in routes)
    # Every API route is documented, so the authorization matrix sees it.
    documented = {(m.upper(), p) for p, ops in _openapi(clients)["paths"].items() for m in ops}
    undocumented_api = [
        (m, p)
        for m, p in _all_routes(clients.server.app)
        if p.startswith(("/api/", "/v1/")) and (m, p) not in documented and m != "HEAD"
    ]
    assert not undocumented_api


def test_every_form_refuses_a_post_without_the_right_csrf_token(
    clients: Clients, engine: Engine
) -> None:
    """A signed-in admin's cookie rides along on a forged cross-site form: every web write
    route (enumerated from the app, so a new form is covered) answers 403 to no token, a
    wrong one and a non-ASCII one, and changes nothing."""
    with clients.as_role("admin") as admin:
        deployment = _report(admin)
        finding = _import_finding(admin, "csrf finding", "d")
        silence = admin.post(
            "/api/v1/silences",
            json={
                "matchers": [{"name": "environment", "value": "staging"}],
                "ends_at": "2099-01-01T00:00:00Z",
                "comment": "c",
            },
        ).json()["id"]
    values = {
        "{deployment_id}": deployment,
        "{finding_id}": finding,
        "{silence_id}": silence,
        "{name}": "staging",
        "{flag}": "csrf_flag",
    }
    routes = sorted(web_write_routes(clients.server.app) - set(CSRF_EXEMPT))
    assert len(routes) >= 10
    set_password(engine, "admin-user")
    with browser(clients.server) as client:
        login(client, "admin-user")
        real_token = csrf_of(client.get("/"))
        before = _rows(engine)
        failures = []
        for method, template in routes:
            path = _fill(template, values)
            assert "{" not in path, f"no value for a parameter of {template}"
            fields = FORM_FIELDS.get(template, {})
            files = (
                {"file": ("r.sarif", _sarif("x", "y"), "application/json")}
                if template == "/security/import"
                else None
            )
            for token in (None, "", "wrong-token", real_token[:-1], "tökén", real_token + "x"):
                data = dict(fields)
                if token is not None:
                    data["csrf_token"] = token
                response = client.request(method, path, data=data, files=files)
                if response.status_code != 403 or "CSRF" not in response.text:
                    failures.append(f"{method} {path} token={token!r}: {response.status_code}")
        assert client.get("/").status_code == 200  # /logout did not end the session
        after = _rows(engine)
    assert not failures, "\n".join(failures)
    changed = [t for t in before if before[t] != after[t]]
    assert not changed, f"forged forms changed {changed}"


def test_cookie_authenticated_api_writes_need_the_csrf_header(
    clients: Clients, engine: Engine
) -> None:
    """The pages call the API with their cookie: every documented write route refuses a
    cookie without X-CSRF-Token (or with a wrong one) before doing anything."""
    set_password(engine, "admin-user")
    with browser(clients.server) as client:
        login(client, "admin-user")
        real_token = csrf_of(client.get("/"))
        before = _rows(engine)
        failures = []
        for (method, template), allowed in MATRIX.items():
            if method not in WRITE_METHODS or allowed == SIGNED:
                continue
            path = _fill(template, PATH_VALUES)
            body = BODIES.get((method, template))
            for headers in ({}, {"X-CSRF-Token": "wrong"}, {"X-CSRF-Token": real_token[:-1]}):
                response = client.request(method, path, json=body, headers=headers)
                if response.status_code != 403:
                    failures.append(f"{method} {path} {headers}: {response.status_code}")
        # A non-ASCII header value (latin-1 on the wire) is a 403 too, not a 500.
        odd = client.put(
            "/api/v1/environments/staging/features/csrf",
            json={"enabled": True},
            headers={"X-CSRF-Token": "t\xf6k\xe9n".encode("latin-1")},
        )
        after = _rows(engine)
    assert not failures, "\n".join(failures)
    assert odd.status_code == 403, odd.text
    changed = [t for t in before if before[t] != after[t] and t != "audit_events"]
    assert not changed, f"forged API writes changed {changed}"


def test_login_form_needs_its_double_submit_cookie(clients: Clients, engine: Engine) -> None:
    """Login CSRF (signing a victim in as the attacker) needs the form's cookie, which another
    site cannot set; the second-factor form does nothing without its pending cookie."""
    set_password(engine, "viewer-user")
    with browser(clients.server) as client:
        client.get("/login")
        for token in ("", "forged", "tökén"):
            forged = client.post(
                "/login",
                data={"username": "viewer-user", "password": PASSWORD, "csrf_token": token},
            )
            assert forged.status_code == 403, forged.text
            assert "shipboard_session" not in forged.headers.get("set-cookie", "")
    with browser(clients.server) as fresh:
        code = fresh.post("/login/code", data={"code": "123456"})
        assert code.status_code == 303
        assert code.headers["location"] == "/login"
        assert "shipboard_session" not in code.headers.get("set-cookie", "")


# --- 6. timing-safe comparison -------------------------------------------------------------


@pytest.fixture
def compare_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Any]]:
    """Every call of hmac.compare_digest while the test runs (the real one still answers)."""
    calls: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    return calls


def test_every_credential_check_uses_compare_digest(
    compare_calls: list[tuple[Any, Any]], clients: Clients, engine: Engine
) -> None:
    """API tokens, webhook signatures and tokens, session and login CSRF tokens, TOTP codes
    and the metrics bearer are each compared with hmac.compare_digest."""
    from shipboard.integrations import mapping
    from shipboard.ops.api import metrics_scraper

    def used(check: Callable[[], object]) -> list[tuple[Any, Any]]:
        start = len(compare_calls)
        check()
        return compare_calls[start:]

    with system_transaction(engine) as session:
        assert used(lambda: auth.authenticate_token(session, token=clients.tokens["admin"]))
    body = b'{"zen": "x"}'
    signature = mapping.github_signature("hook-secret", body)
    assert used(lambda: mapping.verify_github_signature("hook-secret", body, signature))
    assert used(lambda: mapping.verify_github_signature("hook-secret", body, "sha256=00"))
    assert used(lambda: mapping.verify_gitlab_token("hook-secret", "hook-secreT"))
    info = sessions.SessionInfo(
        principal=Principal(user_id=uuid.uuid4(), name="x", role="viewer"),
        csrf_token="the-token",
        needs_touch=False,
        id_hash="h",
    )
    with pytest.raises(sessions.CsrfFailed):
        sessions.check_csrf(info, "the-tokeN")
    assert compare_calls[-1][0] == b"the-token"
    secret = totp.new_secret()
    assert used(lambda: totp.verify(secret, "000000", 1_700_000_000.0))
    request = SimpleNamespace(
        app=SimpleNamespace(state=SimpleNamespace(settings=SimpleNamespace(metrics_token="m-tok")))
    )
    credentials = SimpleNamespace(credentials="m-tok")
    scrape = metrics_scraper(request, None, credentials)  # type: ignore[arg-type]
    assert used(lambda: asyncio.run(scrape))
    # The login form's double-submit token, over HTTP (the server runs in this process).
    with browser(clients.server) as client:
        client.get("/login")
        calls = used(
            lambda: client.post(
                "/login", data={"username": "u", "password": "p", "csrf_token": "forged"}
            )
        )
    assert any(b"forged" in (a, b) for a, b in calls)


SECRET_WORDS = re.compile(r"token|signature|digest|hash|secret|password|csrf", re.I)
CHECKED_SOURCES = [
    *sorted((SRC / "auth").glob("*.py")),
    SRC / "integrations" / "mapping.py",
    SRC / "ops" / "api.py",
    SRC / "web" / "account.py",
]


# Reviewed: no remote party can time these.
EQUALITY_ALLOWED = {
    ("auth/cli.py", "getpass.getpass('Again: ') != password"): "a local prompt's confirmation",
}


def _is_column(node: ast.expr) -> bool:
    """``Model.column`` or ``table.c.column``: an SQL expression (an indexed lookup of a hash),
    not a comparison made in Python."""
    if not isinstance(node, ast.Attribute):
        return False
    if isinstance(node.value, ast.Name):
        return node.value.id[:1].isupper()
    return isinstance(node.value, ast.Attribute) and node.value.attr == "c"


def _identifier(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript):
        return _identifier(node.value)
    return None


def test_no_equality_operator_compares_a_secret() -> None:
    """``==`` on a token, signature, digest, hash or secret stops at the first differing byte;
    comparisons against a literal (``== ""``, a public prefix) are fine."""
    offenders = []
    allowed_seen: set[tuple[str, str]] = set()
    for file in CHECKED_SOURCES:
        tree = ast.parse(file.read_text(), filename=str(file))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Compare):
                continue
            if not any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
                continue
            operands = [node.left, *node.comparators]
            if any(isinstance(o, ast.Constant) or _is_column(o) for o in operands):
                continue
            names = [_identifier(o) or "" for o in operands]
            if any(SECRET_WORDS.search(name) for name in names):
                key = (str(file.relative_to(SRC)), ast.unparse(node))
                if key in EQUALITY_ALLOWED:
                    allowed_seen.add(key)
                else:
                    offenders.append(f"{key[0]}:{node.lineno}: {key[1]}")
    assert not offenders, "\n".join(offenders)
    assert allowed_seen == set(EQUALITY_ALLOWED), "stale EQUALITY_ALLOWED entries"
    assert len(CHECKED_SOURCES) > 5


def test_non_ascii_codes_and_tokens_are_refused_not_errors(
    clients: Clients, engine: Engine
) -> None:
    """compare_digest raises TypeError on non-ASCII str: codes like '١٢٣٤٥٦' (Arabic-Indic
    digits pass str.isdigit) and odd CSRF tokens must be a refusal, not a 500."""
    assert totp.verify(totp.new_secret(), "١٢٣٤٥٦", 1_700_000_000.0) is False
    set_password(engine, "admin-user")
    with browser(clients.server) as client:
        login(client, "admin-user")
        page = client.get("/account")
        response = client.post(
            "/account/totp/confirm", data={"csrf_token": csrf_of(page), "code": "١٢٣٤٥٦"}
        )
        assert response.status_code == 303, response.text
        assert response.headers["location"] == "/account?error=wrong+code"


# --- 7. brute force slowed by rate limits --------------------------------------------------


@pytest.fixture
def strict_server(db: Database) -> Iterator[LiveServer]:
    """A server of its own with a budget of 5 wrong credentials a minute (the shared one keeps
    the default, so other tests from 127.0.0.1 are not refused)."""
    live = LiveServer(db.url, auth_failures_per_minute=5)
    live.start()
    yield live
    live.stop()


def test_wrong_bearer_tokens_from_one_address_get_429(
    strict_server: LiveServer, make_user: Callable[[str, str], str]
) -> None:
    """Guessing tokens: after 5 wrong ones, 429 with Retry-After, and then even the right
    token is refused, so a guess past the budget learns nothing."""
    right = make_user("brute-target", "admin")
    with httpx.Client(base_url=strict_server.base_url, timeout=30) as client:
        me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {right}"})
        assert me.status_code == 200
        wrong = [f"shp_{uuid.uuid4().hex}", "not-a-token", "a.b.c", "shp_", right[:-1] + "x"]
        for guess in wrong:
            answer = client.get("/api/v1/me", headers={"Authorization": f"Bearer {guess}"})
            assert answer.status_code == 401, answer.text
        limited = client.get("/api/v1/me", headers={"Authorization": f"Bearer {wrong[0]}"})
        assert limited.status_code == 429, limited.text
        assert limited.headers["content-type"].startswith("application/problem+json")
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        right_now = client.get("/api/v1/me", headers={"Authorization": f"Bearer {right}"})
        assert right_now.status_code == 429
        # No credentials at all is not a guess: still the plain 401.
        assert client.get("/api/v1/me").status_code == 401


def test_wrong_sign_ins_from_one_address_get_429(
    strict_server: LiveServer, engine: Engine, make_user: Callable[[str, str], str]
) -> None:
    """Password spraying across many user names (each below its own lockout): after 5
    failures from one address the form answers 429 with Retry-After, the right password too."""
    make_user("viewer-user", "viewer")
    set_password(engine, "viewer-user")
    with browser(strict_server) as client:
        for index in range(5):
            failed = login(client, f"sprayed-{index}", "wrong password!!")
            assert failed.status_code == 200
            assert "wrong user name, password or code" in failed.text
        limited = login(client, "viewer-user")
        assert limited.status_code == 429
        assert "text/html" in limited.headers["content-type"]
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert "shipboard_session" not in limited.headers.get("set-cookie", "")
        assert client.get("/").status_code == 303  # not signed in


def test_wrong_webhook_signatures_from_one_address_get_429(
    strict_server: LiveServer, make_user: Callable[[str, str], str]
) -> None:
    """Guessing a webhook secret spends the same budget: after 5 wrong GitHub signatures and
    GitLab tokens, 429 with Retry-After, and the right signature is refused too."""
    from tests.support.webhooks import INTEGRATION_FIXTURES, SECRET, sign_github

    admin = make_user("webhook-admin", "admin")
    body = (INTEGRATION_FIXTURES / "github" / "deployment.created.payload.json").read_bytes()
    with httpx.Client(base_url=strict_server.base_url, timeout=30) as client:
        for kind in ("github", "gitlab"):
            configured = client.put(
                f"/api/v1/integrations/{kind}",
                json={"secret": SECRET},
                headers={"Authorization": f"Bearer {admin}"},
            )
            assert configured.status_code == 200, configured.text

        def github(signature: str) -> httpx.Response:
            return client.post(
                "/api/v1/integrations/github",
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-GitHub-Event": "deployment",
                    "X-GitHub-Delivery": str(uuid.uuid4()),
                    "X-Hub-Signature-256": signature,
                },
            )

        for guess in ("sha256=" + "0" * 64, "sha256=00", "sha1=abc"):
            assert github(guess).status_code == 401
        for token in ("guess-1", "guess-2"):
            wrong = client.post(
                "/api/v1/integrations/gitlab",
                content=b"{}",
                headers={"X-Gitlab-Event": "Deployment Hook", "X-Gitlab-Token": token},
            )
            assert wrong.status_code == 401, wrong.text
        limited = github("sha256=" + "1" * 64)
        assert limited.status_code == 429, limited.text
        assert limited.headers["content-type"].startswith("application/problem+json")
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert github(sign_github(body)).status_code == 429


# --- 8. secrets absent from responses, errors, exports and logs ---------------------------


@pytest.fixture
def server_logs() -> Iterator[io.StringIO]:
    """Everything the server logs (its own events at debug, libraries' at info) while the
    test runs; the previous configuration is put back afterwards."""
    buffer = io.StringIO()
    previous = structlog.get_config()
    root = logging.getLogger()
    level = root.level
    handler = logging.StreamHandler(buffer)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(buffer),
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
    )
    try:
        yield buffer
    finally:
        structlog.configure(**previous)
        root.removeHandler(handler)
        root.setLevel(level)


def test_secrets_and_tokens_never_leave_in_responses_or_logs(
    clients: Clients, engine: Engine, server_logs: io.StringIO
) -> None:
    """An environment secret, an integration secret, API tokens and a session cookie: absent
    from every GET of the API (both roles), every page, validation errors that echo them,
    401s, CSV exports and the server's log."""
    env_secret = f"env-{uuid.uuid4().hex}!"
    hook_secret = f"hook-{uuid.uuid4().hex}!"
    with clients.as_role("admin") as admin:
        admin.put(
            "/api/v1/environments/staging/secrets/API_KEY", json={"value": env_secret}
        ).raise_for_status()
        admin.put("/api/v1/integrations/gitlab", json={"secret": hook_secret}).raise_for_status()
        deployment = _report(admin)
    secrets = [env_secret, hook_secret, *clients.tokens.values()]
    values = {**PATH_VALUES, "{deployment_id}": deployment}
    seen: list[str] = []
    doc = _openapi(clients)
    for role in ("admin", "viewer"):
        with clients.as_role(role) as client:
            for template, ops in doc["paths"].items():
                if "get" not in ops or template.endswith("/stream"):
                    continue
                path = _fill(template, values)
                response = client.get(path, params=QUERY.get(("GET", template)))
                assert response.status_code < 500, (path, response.text)
                seen.append(response.text + str(response.headers))
            for report in ("monitoring", "security", "dora", "performance"):
                csv = client.get(
                    f"/api/v1/reports/{report}", params={"environment": "staging", "format": "csv"}
                )
                seen.append(csv.text)
    with clients.as_role("admin") as admin:
        # Validation errors must not echo the input that carried the secret.
        errors = [
            admin.put(
                "/api/v1/environments/staging/secrets/API_KEY",
                json={"value": env_secret, "unexpected": env_secret},
            ),
            admin.put("/api/v1/environments/staging/secrets/bad key", json={"value": env_secret}),
            admin.put("/api/v1/integrations/gitlab", json={"secret": 42, "x": hook_secret}),
            admin.post(
                "/api/v1/deployments",
                json={"environment": env_secret, "version": env_secret, "commit_sha": env_secret},
            ),
            admin.get("/api/v1/audit", params={"since": env_secret}),
            admin.put(
                "/api/v1/environments/staging/secrets/API_KEY",
                content=b'{"value": "' + env_secret.encode(),
                headers={"Content-Type": "application/json"},
            ),
        ]
        for error in errors:
            assert 400 <= error.status_code < 500, error.text
        seen += [e.text for e in errors]
    wrong_token = clients.tokens["viewer"][:-2] + "zz"
    unauthorized = httpx.get(
        f"{clients.server.base_url}/api/v1/me",
        headers={"Authorization": f"Bearer {wrong_token}"},
        params={"token": wrong_token},
    )
    assert unauthorized.status_code == 401
    seen.append(unauthorized.text)
    secrets.append(wrong_token)
    set_password(engine, "admin-user")
    with browser(clients.server) as client:
        login(client, "admin-user")
        cookie = client.cookies["shipboard_session"]
        for page in (
            "/",
            "/environments/staging",
            "/audit",
            "/account",
            f"/deployments/{deployment}",
        ):
            response = client.get(page)
            assert response.status_code == 200, page
            seen.append(response.text)
    secrets += [cookie, PASSWORD]
    logs = server_logs.getvalue()
    assert "request_finished" in logs, "the log capture saw nothing"
    for secret in secrets:
        leaks = [index for index, text in enumerate(seen) if secret in text]
        assert not leaks, f"{secret[:8]}… appears in responses {leaks}"
        assert secret not in logs, f"{secret[:8]}… appears in the server log"
    # The secret is stored encrypted, not as plaintext, anywhere in the database.
    dump = json.dumps(_rows(engine))
    assert env_secret not in dump
    assert hook_secret not in dump


@pytest.mark.parametrize("json_logs", [False, True])
def test_a_logged_traceback_shows_no_local_variables(
    json_logs: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unexpected error is logged with its traceback, but never with the frames' locals:
    a token or secret value held in a variable must not reach the log."""
    from shipboard.config import Settings
    from shipboard.core.logging import configure_logging

    configure_logging(Settings(log_json=json_logs, log_level="info"))
    try:
        _log_an_error()
    finally:
        configure_logging(Settings(log_level="warning"))
    err = capsys.readouterr().err
    assert "RuntimeError: failed after 44 characters" in err
    assert "L" * 40 not in err


def _log_an_error() -> None:
    import structlog

    try:
        token = "shp_" + "L" * 40
        raise RuntimeError(f"failed after {len(token)} characters")
    except RuntimeError:
        structlog.get_logger("test").exception("unexpected")
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")


# --- 9. revoked, expired and disabled credentials: refused on the very next request ----------


def test_revoked_expired_and_disabled_tokens_are_refused_at_once(
    clients: Clients, engine: Engine, make_user: Callable[[str, str], str]
) -> None:
    """No cache between the database and the check: the request after the change is a 401."""
    base = clients.server.base_url

    def me(token: str) -> int:
        return httpx.get(
            f"{base}/api/v1/me", headers={"Authorization": f"Bearer {token}"}
        ).status_code

    make_user("short-lived", "deployer")
    with system_transaction(engine) as session:
        revocable = auth.create_token(session, user_name="short-lived", audit_context=SYSTEM)
        expiring = auth.create_token(
            session, user_name="short-lived", expires_in=timedelta(hours=1), audit_context=SYSTEM
        )
    assert me(revocable.token) == 200
    with system_transaction(engine) as session:
        auth.revoke_token(session, token_id=revocable.info.id, audit_context=SYSTEM)
    assert me(revocable.token) == 401
    assert me(expiring.token) == 200
    with system_transaction(engine) as session:
        session.execute(
            sa.update(ApiToken)
            .where(ApiToken.id == expiring.info.id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert me(expiring.token) == 401
    fresh = make_user("to-disable", "admin")
    assert me(fresh) == 200
    with system_transaction(engine) as session:
        auth.disable_user(session, name="to-disable", audit_context=SYSTEM)
    assert me(fresh) == 401
    with system_transaction(engine) as session, pytest.raises(Unauthorized):
        auth.authenticate_token(session, token=fresh)


def test_sessions_end_at_once_on_disable_logout_password_change_and_expiry(
    clients: Clients, engine: Engine
) -> None:
    """A stolen session cookie stops working on the next request after the user is disabled,
    signs out, changes password, or the session reaches its absolute lifetime."""

    def signed_in_client() -> tuple[httpx.Client, str]:
        client = browser(clients.server)
        assert login(client, "deployer-user").status_code == 303
        assert client.get("/api/v1/me").status_code == 200
        return client, client.cookies["shipboard_session"]

    def replay(cookie: str) -> tuple[int, int]:
        with browser(clients.server) as thief:
            thief.cookies.set("shipboard_session", cookie)
            return thief.get("/api/v1/me").status_code, thief.get("/").status_code

    set_password(engine, "deployer-user")
    client, cookie = signed_in_client()
    client.post("/logout", data={"csrf_token": csrf_of(client.get("/"))})
    client.close()
    assert replay(cookie) == (401, 303)

    client, cookie = signed_in_client()
    client.close()
    set_password(engine, "deployer-user", PASSWORD + "!")
    assert replay(cookie) == (401, 303)
    set_password(engine, "deployer-user")

    client, cookie = signed_in_client()
    client.close()
    with system_transaction(engine) as session:
        for row in session.scalars(sa.select(WebSession)):
            row.expires_at = utcnow() - timedelta(seconds=1)
    assert replay(cookie) == (401, 303)

    client, cookie = signed_in_client()
    client.close()
    with system_transaction(engine) as session:
        auth.disable_user(session, name="deployer-user", audit_context=SYSTEM)
    assert replay(cookie) == (401, 303)


# --- 10. viewers cannot reach any write route -------------------------------------------------
#
# tests/auth/test_authz_matrix.py covers it: test_every_route_has_an_entry fails for any route of
# the OpenAPI document without an entry in MATRIX, and test_matrix[viewer] calls every route as a
# viewer and expects 403 on each write route outside ALL_USERS (there is none). The pages' forms
# are enumerated above (web_write_routes) and web/test_pages.py checks viewers are refused there.


def test_viewers_have_no_write_route_in_the_matrix() -> None:
    writable = [
        key
        for key, allowed in MATRIX.items()
        if key[0] in WRITE_METHODS and allowed != SIGNED and "viewer" in allowed
    ]
    assert writable == []

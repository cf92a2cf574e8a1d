"""The web pages in a real browser: Debian's Chromium driven by Playwright.

SQLite only (the default install); the HTTP-level page tests run on both databases. Screenshots
go to test-artifacts/ for a human to look at.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import Engine

from shipboard.auth import totp
from shipboard.security.schemas import SecurityFindingCreate, SecurityScanCreate
from tests.support.databases import IN_CI
from tests.support.factories import pipeline_steps, report_deployment, set_pipeline
from tests.support.live import Clients, wait_for
from tests.support.paths import ROOT
from tests.support.web import PASSWORD, set_password

pytestmark = pytest.mark.browser
CHROMIUM = os.environ.get("SHIPBOARD_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1366, "height": 900}


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not shutil.which(CHROMIUM):
        if IN_CI:
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs it with apt-get install chromium")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        yield browser
        browser.close()


class Tab:
    """A page that records console errors and failed requests, for asserting there were none."""

    def __init__(self, browser: Any, base_url: str, viewport: dict[str, int] = DESKTOP) -> None:
        self.context = browser.new_context(viewport=viewport, base_url=base_url)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on(
            "console",
            lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None,
        )
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on(
            "requestfailed",
            lambda r: (
                self.errors.append(f"failed: {r.url} {r.failure}")
                # An EventSource closed by navigating away is not a failure of ours.
                if "/logs/stream" not in r.url
                else None
            ),
        )
        self.page.on(
            "response",
            lambda r: self.errors.append(f"HTTP {r.status}: {r.url}") if r.status >= 500 else None,
        )

    def login(self, name: str, password: str = PASSWORD) -> None:
        self.page.goto("/login")
        self.page.get_by_label("User name").fill(name)
        self.page.get_by_label("Password").fill(password)
        with self.page.expect_navigation():
            self.page.get_by_role("button", name="Sign in").click()

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab(chromium: Any, clients: Clients) -> Iterator[Tab]:
    opened = Tab(chromium, clients.server.base_url)
    yield opened
    opened.close()


def test_sign_in_with_password_and_totp_and_lock_out(
    chromium: Any, clients: Clients, engine: Engine
) -> None:
    set_password(engine, "admin-user")
    set_password(engine, "deployer-user")
    tab = Tab(chromium, clients.server.base_url)
    try:
        tab.login("admin-user")
        tab.page.wait_for_url("**/")
        tab.page.goto("/account")
        tab.page.get_by_label("Your password").fill(PASSWORD)
        tab.page.get_by_role("button", name="Set up an authenticator app").click()
        secret = tab.page.locator("#totp-secret").inner_text()
        assert tab.page.locator(".qr svg").count() == 1
        tab.shot("account-totp-enrolment")
        enrolled_at = time.time()
        tab.page.get_by_label("Code").fill(totp.code_at(secret, enrolled_at))
        tab.page.get_by_role("button", name="Confirm and enable").click()
        assert "Enabled since" in tab.page.inner_text("main")
        tab.page.get_by_role("button", name="Sign out").click()
        tab.page.wait_for_url("**/login")

        tab.login("admin-user")
        tab.page.wait_for_url("**/login/code**")
        tab.page.get_by_label("Six-digit code from your authenticator app").fill("000000")
        tab.page.get_by_role("button", name="Verify").click()
        assert "wrong user name, password or code" in tab.page.inner_text("main")
        # The next step's code: the enrolment's own is spent (accepted once).
        tab.page.get_by_label("Six-digit code from your authenticator app").fill(
            totp.code_at(secret, enrolled_at + 30)
        )
        tab.page.get_by_role("button", name="Verify").click()
        tab.page.wait_for_url("**/")
        assert tab.page.locator("h1").inner_text() == "Overview"
        assert not tab.errors, tab.errors
    finally:
        tab.close()

    other = Tab(chromium, clients.server.base_url)
    try:
        for _ in range(5):
            other.login("deployer-user", "not the password")
        assert "locked" in other.page.inner_text("main")
        other.login("deployer-user")
        assert "locked" in other.page.inner_text("main")
        other.shot("login-locked")
    finally:
        other.close()


def test_live_log_tail_and_final_status(
    tab: Tab, clients: Clients, engine: Engine, worker: Any, tmp_path: Path
) -> None:
    gate = tmp_path / "go"
    set_password(engine, "deployer-user")
    with clients.as_role("admin") as admin:
        set_pipeline(
            admin,
            "staging",
            pipeline_steps(
                ("prepare", "build", "echo preparing"),
                # Waits until the test has the page open, then says something new.
                (
                    "ship",
                    "deploy",
                    f"while [ ! -f {gate} ]; do sleep 0.1; done; echo shipped-after-load",
                ),
            ),
        )
    with clients.as_role("deployer") as deployer:
        created = deployer.post(
            "/api/v1/deployments",
            json={"environment": "staging", "version": "2.0.0", "commit_sha": "abcdef1"},
        )
        assert created.status_code == 201, created.text
        did = created.json()["id"]
    tab.login("deployer-user")
    tab.page.wait_for_url("**/")
    opened = tab.page.goto(f"/deployments/{did}")
    assert opened is not None
    assert opened.status == 200, tab.page.inner_text("main")
    wait_for(lambda: "preparing" in tab.page.inner_text("#log"), timeout=20)
    assert "shipped-after-load" not in tab.page.inner_text("#log")
    gate.write_text("go")
    # Locator assertions, not wait_for_function: the CSP (rightly) forbids eval on our pages.
    expect(tab.page.locator("#log")).to_contain_text("shipped-after-load", timeout=20_000)
    expect(tab.page.locator("#deployment-status")).to_have_text("success", timeout=20_000)
    expect(tab.page.locator("#live-status")).to_contain_text("finished")
    tab.shot("deployment-live-log")
    assert not tab.errors, tab.errors


def test_viewer_has_no_rollback_and_a_deployer_rolls_back(
    chromium: Any, clients: Clients, engine: Engine
) -> None:
    set_password(engine, "viewer-user")
    set_password(engine, "deployer-user")
    with clients.as_role("deployer") as deployer:
        report_deployment(deployer, "development", "1.0.0", outcome="success")
        bad = report_deployment(deployer, "development", "1.1.0", outcome="failed")
    viewer = Tab(chromium, clients.server.base_url)
    try:
        viewer.login("viewer-user")
        viewer.page.wait_for_url("**/")
        viewer.page.goto(f"/deployments/{bad}")
        assert viewer.page.locator("#rollback").count() == 0
        assert not viewer.errors, viewer.errors
    finally:
        viewer.close()
    deployer_tab = Tab(chromium, clients.server.base_url)
    try:
        deployer_tab.login("deployer-user")
        deployer_tab.page.wait_for_url("**/")
        deployer_tab.page.goto(f"/deployments/{bad}")
        deployer_tab.page.once("dialog", lambda dialog: dialog.accept())
        deployer_tab.page.locator("#rollback").click()
        deployer_tab.page.wait_for_url("**/deployments/*?done=rollback+started")
        assert deployer_tab.page.locator("#rollback-from").inner_text() == bad
        assert "1.0.0" in deployer_tab.page.locator("h1").inner_text()
        deployer_tab.shot("deployment-rollback")
        assert not deployer_tab.errors, deployer_tab.errors
    finally:
        deployer_tab.close()


def test_a_form_post_without_the_csrf_token_is_refused(tab: Tab, engine: Engine) -> None:
    set_password(engine, "admin-user")
    tab.login("admin-user")
    tab.page.wait_for_url("**/")
    # Take the token out of the sign-out form, as a forged cross-site form would lack it.
    tab.page.evaluate(
        "document.querySelectorAll('input[name=csrf_token]').forEach(e => e.remove())"
    )
    tab.page.get_by_role("button", name="Sign out").click()
    assert "CSRF" in tab.page.inner_text("main")
    tab.page.goto("/")
    assert tab.page.locator("h1").inner_text() == "Overview"  # still signed in


PAGES = (
    "/",
    "/deployments",
    "/environments",
    "/environments/production",
    "/monitoring",
    "/security",
    "/performance",
    "/dora",
    "/audit",
    "/account",
)


def _seed(clients: Clients, engine: Engine) -> None:
    from shipboard.db.engine import transaction
    from shipboard.security.service import create_finding, create_scan

    with clients.as_role("admin") as admin:
        report_deployment(admin, "development", "1.0.0", outcome="success")
        report_deployment(admin, "development", "1.1.0", outcome="failed")
        admin.post(
            "/api/v1/metrics",
            json={
                "metrics": [
                    {
                        "name": "latency_ms",
                        "environment": "production",
                        "value": 100 + i,
                        "source": "app",
                    }
                    for i in range(5)
                ]
            },
        ).raise_for_status()
        admin.post(
            "/api/v1/performance/metrics",
            json={
                "metrics": [
                    {"name": "api.p95", "environment": "staging", "value": 100 + i, "unit": "ms"}
                    for i in range(5)
                ]
            },
        ).raise_for_status()
    with transaction(engine) as session:
        scan = create_scan(
            session,
            data=SecurityScanCreate(type="sast", environment="production", status="completed"),
        )
        create_finding(
            session,
            data=SecurityFindingCreate(
                scan_id=scan.id, severity="critical", title="SQL injection", description="d"
            ),
        )


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_every_page_renders_cleanly(
    chromium: Any, clients: Clients, engine: Engine, viewport: str
) -> None:
    _seed(clients, engine)
    set_password(engine, "admin-user")
    tab = Tab(chromium, clients.server.base_url, PHONE if viewport == "phone" else DESKTOP)
    try:
        tab.login("admin-user")
        tab.page.wait_for_url("**/")
        for path in PAGES:
            response = tab.page.goto(path)
            assert response is not None
            assert response.status == 200, f"{path}: {response.status}"
            tab.page.wait_for_load_state("networkidle")
            # Nothing wider than the screen: readable on a phone without sideways scrolling
            # (tables scroll inside their own box).
            overflow = tab.page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 1, f"{path} is {overflow}px wider than the {viewport} screen"
            name = path.strip("/").replace("/", "-") or "overview"
            tab.shot(f"{viewport}-{name}")
        assert not tab.errors, tab.errors
    finally:
        tab.close()


def _sarif(*results: tuple[str, str, float]) -> bytes:
    import json

    return json.dumps(
        {
            "version": "2.1.0",
            "runs": [
                {
                    "tool": {
                        "driver": {
                            "name": "semgrep",
                            "rules": [
                                {"id": rule, "properties": {"security-severity": str(score)}}
                                for rule, _, score in results
                            ],
                        }
                    },
                    "results": [
                        {
                            "ruleId": rule,
                            "level": "error",
                            "message": {"text": message},
                            "locations": [
                                {
                                    "physicalLocation": {
                                        "artifactLocation": {"uri": f"app/{rule}.py"},
                                        "region": {"startLine": 3},
                                    }
                                }
                            ],
                        }
                        for rule, message, _ in results
                    ],
                }
            ],
        }
    ).encode()


def test_security_filter_and_triage_as_false_positive(
    tab: Tab, clients: Clients, engine: Engine
) -> None:
    set_password(engine, "deployer-user")
    with clients.as_role("deployer") as deployer:
        imported = deployer.post(
            "/api/v1/security/scans/import",
            files={
                "file": (
                    "scan.sarif",
                    _sarif(("sqli", "SQL built from input", 9.8), ("weak-hash", "MD5 used", 7.5)),
                )
            },
            data={"environment": "production"},
        )
        assert imported.status_code == 201, imported.text
    tab.login("deployer-user")
    tab.page.wait_for_url("**/")
    tab.page.goto("/security")
    tab.page.get_by_label("Severity").select_option("critical")
    with tab.page.expect_navigation():
        tab.page.get_by_role("button", name="Filter").click()
    rows = tab.page.locator("table.findings tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("app/sqli.py")
    tab.shot("security-critical")
    with tab.page.expect_navigation():
        rows.first.get_by_role("link").first.click()
    tab.page.get_by_label("false positive").check()
    tab.page.get_by_label("Reason").fill("parameterised by the ORM; the rule cannot see it")
    with tab.page.expect_navigation():
        tab.page.get_by_role("button", name="Save triage").click()
    tab.page.goto("/security?severity=critical&status=open")
    expect(tab.page.locator("table.findings tbody tr")).to_have_count(0)
    tab.page.goto("/security?status=open")
    expect(tab.page.locator("table.findings tbody tr")).to_have_count(1)
    expect(tab.page.locator("table.findings")).to_contain_text("app/weak-hash.py")
    assert not tab.errors, tab.errors


def test_api_docs_render_from_our_own_assets_under_the_policy(tab: Tab, clients: Clients) -> None:
    """Swagger UI starts under the pages' CSP (no inline script, no CDN) and shows the API."""
    requested: list[str] = []
    tab.page.on("request", lambda r: requested.append(r.url))
    tab.page.goto("/docs")
    tab.page.wait_for_selector(".swagger-ui .info .title", timeout=20_000)
    assert "Shipboard" in tab.page.inner_text(".swagger-ui .info .title")
    assert tab.page.locator(".opblock").count() > 50  # every operation is listed
    tab.shot("api-docs")
    assert tab.errors == []
    origin = clients.server.base_url + "/"
    assert [
        url for url in requested if not url.startswith(origin) and not url.startswith("data:")
    ] == []

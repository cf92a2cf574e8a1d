"""Encryption in transit: `shipboard serve` over TLS, HSTS and secure cookies, trusted proxies,
and ``sslmode`` in a PostgreSQL URL."""

from __future__ import annotations

import ipaddress
import os
import re
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from shipboard.config import Settings
from shipboard.db.engine import create_db_engine
from tests.support.databases import PG_BASE_URL, require_postgres
from tests.support.live import free_port

HSTS = "max-age=31536000"


def _write_pki(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost, signed by it."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Shipboard test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = (
        directory / "ca.pem",
        directory / "cert.pem",
        directory / "key.pem",
    )
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return ca_file, cert_file, key_file


@contextmanager
def serving(
    home: Path, *args: str, env: dict[str, str] | None = None, verify: ssl.SSLContext | None = None
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`shipboard serve` in a subprocess on a SQLite home; yields its base URL once it answers."""
    port = free_port()
    scheme = "https" if "--ssl-certfile" in args else "http"
    environ = {**os.environ, "SHIPBOARD_HOME": str(home), **(env or {})}
    environ.pop("SHIPBOARD_DATABASE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "shipboard", "serve", "--port", str(port), "--no-worker", *args],
        env=environ,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    base = f"{scheme}://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/healthz", verify=verify or True, timeout=2)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    _, stderr = proc.communicate(timeout=10)
                    raise AssertionError(f"serve did not start: {stderr}") from None
                time.sleep(0.1)
        yield base, proc
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)


def test_serve_over_tls_sends_hsts_and_secure_cookies(tmp_path: Path) -> None:
    ca_file, cert_file, key_file = _write_pki(tmp_path)
    trust = ssl.create_default_context(cafile=str(ca_file))
    with serving(
        tmp_path / "home",
        "--ssl-certfile",
        str(cert_file),
        "--ssl-keyfile",
        str(key_file),
        verify=trust,
    ) as (base, proc):
        with httpx.Client(base_url=base, verify=trust) as client:
            health = client.get("/healthz")
            assert health.status_code == 200
            assert health.json() == {"status": "ok"}
            assert health.headers["strict-transport-security"] == HSTS
            login = client.get("/login")
            assert login.status_code == 200
            cookies = login.headers.get_list("set-cookie")
            assert cookies
            assert all("; secure" in c.lower() for c in cookies), cookies
        # Without the CA the certificate is not trusted; plain HTTP gets no answer.
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base}/healthz")
        with pytest.raises(httpx.TransportError):
            httpx.get(base.replace("https://", "http://") + "/healthz", timeout=5)
        assert proc.stderr is not None
        printed = "".join(proc.stderr.readline() for _ in range(6))
        port = base.rsplit(":", 1)[1]
        assert f"https://localhost:{port}/api/v1" in printed
        token = re.search(r"(shp_[A-Za-z0-9_-]{20,})", printed)
        assert token, printed
        # The CLI trusts a private CA named by SSL_CERT_FILE, and nothing else.
        cli_env = {**os.environ, "SHIPBOARD_URL": base, "SHIPBOARD_TOKEN": token[1]}
        command = [sys.executable, "-m", "shipboard", "env", "show", "--json"]
        trusted = subprocess.run(
            command,
            env={**cli_env, "SSL_CERT_FILE": str(ca_file)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert trusted.returncode == 0, trusted.stderr
        untrusted = subprocess.run(
            command, env=cli_env, capture_output=True, text=True, timeout=60, check=False
        )
        assert untrusted.returncode == 4, untrusted.stderr


def test_a_trusted_proxy_makes_the_scheme_https_and_others_are_ignored(tmp_path: Path) -> None:
    behind_proxy = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    # Default: the proxy on this machine (127.0.0.1) is trusted.
    with serving(tmp_path / "home") as (base, _):
        response = httpx.get(f"{base}/login", headers=behind_proxy)
        assert response.headers["strict-transport-security"] == HSTS
        assert all("; secure" in c.lower() for c in response.headers.get_list("set-cookie"))
        plain = httpx.get(f"{base}/login")
        assert "strict-transport-security" not in plain.headers
        assert not any("; secure" in c.lower() for c in plain.headers.get_list("set-cookie"))
    # Only the proxies named are trusted: a client cannot claim https for itself.
    with serving(tmp_path / "home", env={"SHIPBOARD_FORWARDED_ALLOW_IPS": "10.20.30.40"}) as (
        base,
        _,
    ):
        response = httpx.get(f"{base}/login", headers=behind_proxy)
        assert "strict-transport-security" not in response.headers
        assert not any("; secure" in c.lower() for c in response.headers.get_list("set-cookie"))


def test_half_a_certificate_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "shipboard", "serve", "--ssl-certfile", str(tmp_path / "c.pem")],
        env={**os.environ, "SHIPBOARD_HOME": str(tmp_path / "home")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--ssl-certfile and --ssl-keyfile go together" in result.stderr


@pytest.mark.postgres
def test_sslmode_in_the_database_url_is_honoured() -> None:
    require_postgres()
    plain = make_url(create_db_engine(PG_BASE_URL).url).render_as_string(hide_password=False)
    plain = plain.split("?", 1)[0]
    with create_db_engine(PG_BASE_URL).connect() as conn:
        server_ssl = conn.scalar(sa.text("SHOW ssl")) == "on"
    # As people paste it (postgres://), through the settings, to the driver.
    pasted = plain.replace("postgresql+psycopg://", "postgres://", 1) + "?sslmode=require"
    engine = create_db_engine(Settings(database_url=pasted).effective_database_url)
    assert engine.url.query["sslmode"] == "require"
    if server_ssl:
        with engine.connect() as conn:
            query = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
            assert conn.scalar(sa.text(query)) is True
    else:
        # This server speaks no TLS: a URL that requires it must fail, never fall back.
        with pytest.raises(OperationalError, match="SSL"), engine.connect():
            pass
        # Migrations (Alembic's own engine) read the same URL.
        result = subprocess.run(
            [sys.executable, "-m", "shipboard", "db", "upgrade"],
            env={**os.environ, "SHIPBOARD_DATABASE_URL": pasted},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 4, result.stderr
        assert "database unreachable" in result.stderr
    engine.dispose()
    engine = create_db_engine(f"{plain}?sslmode=disable")
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT 1")) == 1
    engine.dispose()

"""Which addresses the server may connect to when it follows a URL a user stored.

Webhook and Slack channels, Alertmanager channels, pipeline healthchecks and Prometheus scrape
targets make the server send requests to URLs an admin typed in. Without a check, such a URL can
point at the cloud's instance metadata service (``http://169.254.169.254/``) and turn Shipboard
into a proxy for the machine's credentials (server-side request forgery).

Refused: link-local addresses (``169.254.0.0/16``, ``fe80::/10``), the metadata addresses of the
large clouds, the metadata hostnames, the same addresses written as IPv4-mapped or NAT64 IPv6, and
any scheme but http and https. Allowed: everything else, loopback and private ranges included —
a self-hosted control plane legitimately calls hosts on its own network.
``SHIPBOARD_OUTBOUND_ALLOW`` lists networks and hostnames that are allowed even so.

Checked twice: when a URL is stored (a literal address or a metadata hostname is refused at once,
no DNS), and when a connection is made: the name is resolved, every address is checked, and the
connection goes to an address that passed, so a name that resolves (or re-resolves, DNS
rebinding) to a metadata address is refused too. Redirects are not followed.
"""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)
from typing import Any

import httpcore
import httpx

from shipboard.core import deadline

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network
Resolver = Callable[..., Sequence[tuple[Any, ...]]]

SETTING = "SHIPBOARD_OUTBOUND_ALLOW"
SCHEMES = frozenset({"http", "https"})
BLOCKED_NETWORKS: tuple[tuple[IPNetwork, str], ...] = (
    # 169.254.169.254 is the metadata service of AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle.
    (ip_network("169.254.0.0/16"), "a link-local address"),
    (ip_network("fe80::/10"), "a link-local address"),
    (ip_network("fd00:ec2::254/128"), "the AWS metadata address"),
    (ip_network("100.100.100.200/32"), "the Alibaba Cloud metadata address"),
    (ip_network("168.63.129.16/32"), "the Azure host address (WireServer)"),
)
METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
_NAT64 = ip_network("64:ff9b::/96")
_IPV4_PART = re.compile(r"0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*")


class OutboundRefused(Exception):
    """A URL, host or address that the outbound policy does not allow."""


def parse_ipv4(host: str) -> IPv4Address | None:
    """An IPv4 address in any form ``inet_aton`` and browsers accept, or None for a name.

    ``2852039166``, ``0xa9fea9fe``, ``0251.0376.0251.0376`` and ``169.254.43518`` are all
    169.254.169.254 to the resolver, so they must be to the guard.
    """
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()  # a trailing dot, as in a fully qualified name
    if not 1 <= len(parts) <= 4 or not all(_IPV4_PART.fullmatch(p) for p in parts):
        return None
    values = [
        int(p[2:] or "0", 16) if p[:2].lower() == "0x" else int(p, 8) if p[0] == "0" else int(p)
        for p in parts
    ]
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (5 - len(values)):
        return None
    number = last
    for i, value in enumerate(head):
        number |= value << (8 * (3 - i))
    return IPv4Address(number)


def parse_address(host: str) -> IPAddress | None:
    """The address a host string names literally (any IPv4 form, IPv6 with or without
    brackets and zone), or None when it is a name to resolve."""
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:
        try:
            return ip_address(host.replace("%25", "%"))
        except ValueError:
            return None
    return parse_ipv4(host)


def normalize_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _effective(address: IPAddress) -> IPAddress:
    # ::ffff:169.254.169.254 reaches 169.254.169.254 on a dual-stack socket, and 64:ff9b::/96
    # does through a NAT64 gateway; judge them as the IPv4 address they carry.
    if isinstance(address, IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return IPv4Address(int(address) & 0xFFFFFFFF)
        if address.scope_id:
            return IPv6Address(str(address).split("%", 1)[0])
    return address


@dataclass(frozen=True)
class OutboundPolicy:
    """What outbound requests to stored URLs may reach; the default refuses link-local and
    metadata addresses only. ``resolver`` is ``socket.getaddrinfo`` unless a test injects one."""

    allowed_networks: tuple[IPNetwork, ...] = ()
    allowed_hosts: frozenset[str] = frozenset()
    resolver: Resolver | None = field(default=None, compare=False, repr=False)

    @classmethod
    def parse(cls, setting: str | None, *, resolver: Resolver | None = None) -> OutboundPolicy:
        """From the comma-separated setting: CIDRs, single addresses or hostnames."""
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for raw in (setting or "").split(","):
            entry = raw.strip()
            if not entry:
                continue
            address = parse_address(entry)
            if address is not None:
                networks.append(ip_network(_effective(address)))
                continue
            if "/" in entry:
                try:
                    networks.append(ip_network(entry.strip("[]"), strict=False))
                except ValueError:
                    raise ValueError(f"{SETTING}: {entry!r} is not a network") from None
                continue
            if not re.fullmatch(r"[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})", entry):
                raise ValueError(f"{SETTING}: {entry!r} is not a hostname, address or network")
            hosts.add(normalize_host(entry))
        return cls(tuple(networks), frozenset(hosts), resolver)

    def with_resolver(self, resolver: Resolver) -> OutboundPolicy:
        return OutboundPolicy(self.allowed_networks, self.allowed_hosts, resolver)

    # --- decisions ------------------------------------------------------------------------

    def address_refusal(self, address: IPAddress) -> str | None:
        """Why connecting to this address is refused, or None when it is allowed."""
        what = self._blocked_as(address)
        if not what:
            return None
        effective = _effective(address)
        shown = f"{address} ({effective})" if effective.version != address.version else str(address)
        return f"{shown} is {what}"

    def _blocked_as(self, address: IPAddress) -> str | None:
        effective = _effective(address)
        if any(effective in n for n in self.allowed_networks if n.version == effective.version):
            return None
        for network, what in BLOCKED_NETWORKS:
            if network.version == effective.version and effective in network:
                return what
        return None

    def host_refusal(self, host: str) -> str | None:
        """Why a host is refused without resolving it (a literal address or a metadata name)."""
        name = normalize_host(host)
        if name in self.allowed_hosts:
            return None
        address = parse_address(host)
        if address is not None:
            return self.address_refusal(address)
        if name in METADATA_HOSTS:
            return f"{name} is a cloud metadata hostname"
        return None

    def url_refusal(self, url: str) -> str | None:
        """Why a URL may not be stored: its scheme, or a host refused without DNS. A name is
        resolved only when the request is made, where the answer is the one connected to."""
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            return f"not a valid URL: {exc}"
        if parsed.scheme not in SCHEMES:
            return f"scheme {parsed.scheme or '(none)'!r} is not http or https"
        if not parsed.host:
            return "the URL has no host"
        reason = self.host_refusal(parsed.host)
        return _with_hint(reason) if reason else None

    def check_url(self, url: str) -> None:
        """Raise ``OutboundRefused`` when ``url_refusal`` has a reason."""
        reason = self.url_refusal(url)
        if reason:
            raise OutboundRefused(reason)

    def resolve(self, host: str, port: int) -> list[str]:
        """The addresses to connect to for ``host``, every one of them checked: one refused
        address refuses the host (a name answering with a metadata address is not trusted for
        its other answers either). Raises ``OutboundRefused`` or ``OSError`` (no such name)."""
        reason = self.host_refusal(host)
        if reason:
            raise OutboundRefused(_with_hint(reason))
        literal = parse_address(host)
        if literal is not None:
            return [str(literal)]
        resolver = self.resolver or socket.getaddrinfo
        infos = resolver(host, port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addresses:
            raise OSError(f"{host} has no address")
        if normalize_host(host) in self.allowed_hosts:
            return addresses
        for text in addresses:
            what = self._blocked_as(ip_address(text))
            if what:
                raise OutboundRefused(_with_hint(f"{host} resolves to {text}, {what}"))
        return addresses

    # --- the HTTP client --------------------------------------------------------------------

    def client(self, *, timeout: float, verify: ssl.SSLContext | bool = True) -> httpx.Client:
        """An httpx client that connects only where this policy allows and follows no redirect.

        It does not use ``HTTP(S)_PROXY``: the guard must see the address it connects to."""
        return httpx.Client(
            # The timeout bounds the whole request as well as each read: httpx's alone restarts
            # with every byte, so a target dripping its answer held a scrape or sender thread.
            transport=GuardedTransport(self, verify=verify, total_s=timeout),
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            event_hooks={"request": [self._check_request]},
        )

    def _check_request(self, request: httpx.Request) -> None:
        self.check_url(str(request.url))


def _with_hint(reason: str) -> str:
    return f"{reason}; outbound requests there are refused unless {SETTING} allows it"


class _GuardedBackend(httpcore.NetworkBackend):
    """httpcore's socket backend, connecting to checked addresses only."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self.policy = policy
        self.inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = self.policy.resolve(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        error: Exception | None = None
        for address in addresses:
            try:
                return self.inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not an outbound target")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport over the guarded backend (TLS still verifies the URL's hostname)."""

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        verify: ssl.SSLContext | bool = True,
        total_s: float | None = None,
    ) -> None:
        super().__init__(verify=verify, trust_env=False)
        context = verify if isinstance(verify, ssl.SSLContext) else None
        guarded: httpcore.NetworkBackend = _GuardedBackend(policy)
        self._pool = httpcore.ConnectionPool(
            ssl_context=context or httpx.create_ssl_context(verify=verify, trust_env=False),
            network_backend=guarded if total_s is None else deadline.backend(guarded),
        )
        self.total_s = total_s

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.total_s is not None:
            deadline.begin(self.total_s)
        return super().handle_request(request)


DEFAULT_POLICY = OutboundPolicy()

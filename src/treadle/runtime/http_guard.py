"""Where HTTP tasks may connect: link-local and cloud metadata addresses are refused by default.

The check sits in the connection step, not in front of the request: a guarded transport resolves
the host name itself, checks *every* address the name resolves to, and connects to an address it
checked. So every spelling of an address (``2852039166``, ``0xa9fea9fe``, ``0251.0376.0251.0376``,
``[::ffff:169.254.169.254]``), a DNS name that resolves there, a redirect that leads there and a
DNS answer that changes between two requests (rebinding) all meet the same check.

Loopback and private ranges stay allowed by default: treadle runs next to the services it
orchestrates (and its tests use a local HTTP server). ``http_deny_private`` refuses them too;
``http_allow_networks`` lists networks that are allowed even though refused by default (for
example ``169.254.0.0/16`` where a task really must read instance metadata).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]

#: Refused unless allowed: link-local (where cloud metadata services answer) and metadata hosts.
METADATA_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "169.254.0.0/16",  # IPv4 link-local: AWS, GCP, Azure, OpenStack metadata, ECS
        "fe80::/10",  # IPv6 link-local
        "fd00:ec2::254/128",  # AWS IMDS over IPv6
        "100.100.100.200/32",  # Alibaba Cloud metadata
    )
)
#: Also refused with ``http_deny_private``.
PRIVATE_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "::/128",
        "::1/128",
        "fc00::/7",
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class AddressRefused(Exception):
    """An HTTP task tried to reach an address the policy refuses; the message names it."""


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses HTTP tasks may connect to."""

    allow: tuple[IPNetwork, ...] = ()
    deny_private: bool = False
    extra_deny: tuple[IPNetwork, ...] = field(default=())

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> AddressPolicy:
        """From the runtime settings ``http_allow_networks`` and ``http_deny_private``."""
        allow = settings.get("http_allow_networks") or ()
        if isinstance(allow, str):
            allow = [a for a in allow.split(",") if a.strip()]
        return cls(
            allow=parse_networks(allow), deny_private=bool(settings.get("http_deny_private"))
        )

    def refusal(self, address: IPAddress) -> str | None:
        """Why ``address`` is refused, or None when it may be used."""
        forms: list[IPAddress] = [address]
        inner = embedded_ipv4(address)
        if inner is not None:
            forms.append(inner)
        denied = (*METADATA_NETWORKS, *self.extra_deny)
        if self.deny_private:
            denied = (*denied, *PRIVATE_NETWORKS)
        for form in forms:
            if any(form in net for net in self.allow if net.version == form.version):
                continue
            for net in denied:
                if net.version == form.version and form in net:
                    kind = "private" if net in PRIVATE_NETWORKS else "link-local / metadata"
                    return f"{form} is a {kind} address ({net})"
            if self.deny_private and (form.is_multicast or form.is_reserved):
                return f"{form} is a reserved address"
        return None


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """``["169.254.0.0/16", "fd00:ec2::254"]`` as networks; a bad entry raises ValueError."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"http_allow_networks: {value!r} is not a network: {exc}") from exc
    return tuple(networks)


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (numeric spellings too, as the C library reads them)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that resolves, checks and connects to the checked address."""

    def __init__(
        self,
        policy: AddressPolicy,
        resolver: Resolver = system_resolver,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.policy = policy
        self.resolver = resolver
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                resolved = await self.resolver(host, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        addresses = checked_addresses(host, resolved, self.policy)
        error: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None  # checked_addresses never returns an empty list
        raise error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused(f"HTTP tasks may not connect to the unix socket {path}")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def checked_addresses(host: str, resolved: Sequence[str], policy: AddressPolicy) -> list[str]:
    """The addresses to connect to; any refused one refuses the host (no rebinding mix)."""
    addresses: list[str] = []
    for text in resolved:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        reason = policy.refusal(address)
        if reason is not None:
            shown = host if host == str(address) else f"{host} ({address})"
            raise AddressRefused(
                f"refused to connect to {shown}: {reason}; "
                "allow it with the setting http_allow_networks"
            )
        addresses.append(str(address))
    if not addresses:
        raise httpcore.ConnectError(f"{host} resolves to no address")
    return addresses


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport whose connections go through :class:`GuardedBackend` (no proxies)."""

    def __init__(
        self,
        policy: AddressPolicy | None = None,
        resolver: Resolver = system_resolver,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        super().__init__(verify=verify)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),
            network_backend=GuardedBackend(policy or AddressPolicy(), resolver),
        )

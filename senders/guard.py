"""The SMTP host guard: every outgoing SMTP connection (verify and delivery) passes through here.

A customer chooses the host we connect to, which makes every SMTP connection a potential SSRF:
to cloud metadata, to our own database, to anything on our private network. So:

- the host is resolved once here, and *every* address it resolves to must be public (one
  private answer among public ones is refused: the connection could land on either);
- the caller connects to the address that was checked, never to the name again, so a DNS
  answer that changes between check and use (rebinding) cannot redirect it;
- the port must be in SMTP_ALLOWED_PORTS.

SMTP_ALLOW_PRIVATE_HOSTS lifts the address rule (tests, self-hosting); ports still apply.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Ranges `is_global` misses or that embed an IPv4 address we must check in turn.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 address is the last 32 bits
# RFC 8215, local-use NAT64: where the IPv4 address sits depends on the prefix length the
# network chose (/48 to /96), so what it points to cannot be told here. Refused.
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
# IETF protocol assignments (RFC 6890): not globally reachable but for two anycast services
# (PCP, TURN), and no mail server. Python before 3.13 counts most of the block as global.
_IETF_PROTOCOL = ipaddress.ip_network("192.0.0.0/24")


class HostNotAllowed(Exception):
    """The host or port may not be connected to. The message is safe to show the customer."""


@dataclass(frozen=True)
class Target:
    """A checked destination: connect to `address`, verify TLS against `hostname`."""

    hostname: str
    address: str
    port: int


def allowed_ports() -> set[int] | None:
    """The allowed ports, or None for any (`*`)."""
    raw = str(settings.SMTP_ALLOWED_PORTS).strip()
    if raw == "*":
        return None
    return {int(p) for p in raw.split(",") if p.strip()}


def check_port(port: int) -> None:
    ports = allowed_ports()
    if not 0 < port < 65536 or (ports is not None and port not in ports):
        allowed = "any" if ports is None else ", ".join(str(p) for p in sorted(ports))
        raise HostNotAllowed(f"Port {port} is not allowed for SMTP (allowed: {allowed}).")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _SIX_TO_FOUR:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    # IPv4-compatible (deprecated ::a.b.c.d) addresses.
    if int(address) >> 32 == 0 and int(address) > 1:
        return ipaddress.IPv4Address(int(address))
    return None


def is_public(address: IPAddress) -> bool:
    """True only for globally routable unicast addresses (and no private IPv4 inside an IPv6)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public(embedded)
        # Site-local (fec0::/10) is deprecated, but local wherever it is still used.
        if address.scope_id or address.is_site_local or address in _NAT64_LOCAL:
            return False
    if isinstance(address, ipaddress.IPv4Address) and (address in _CGNAT or address in _IETF_PROTOCOL):
        return False
    return address.is_global and not (
        address.is_multicast
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_unspecified
    )


def resolve(host: str, port: int) -> list[str]:
    """All addresses `host` resolves to (numeric forms like 127.1 and 0x7f000001 included)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise HostNotAllowed(f"The host {host!r} does not resolve.") from exc
    # getaddrinfo may repeat an address per socket type; keep the order, drop the repeats.
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check(host: str, port: int) -> Target:
    """Resolve and check `host:port`; return the address to connect to.

    Raises HostNotAllowed for a disallowed port, a name that does not resolve, or any
    non-public address (unless SMTP_ALLOW_PRIVATE_HOSTS).
    """
    check_port(port)
    host = host.strip().rstrip(".")
    if not host:
        raise HostNotAllowed("The SMTP host is empty.")
    addresses = resolve(host, port)
    if not addresses:
        raise HostNotAllowed(f"The host {host!r} does not resolve.")
    allowed_networks = [
        ipaddress.ip_network(n.strip(), strict=False) for n in settings.SMTP_ALLOWED_NETWORKS if n.strip()
    ]
    if allowed_networks:
        for raw in addresses:
            address = ipaddress.ip_address(raw.split("%", 1)[0])
            if not any(address in network for network in allowed_networks):
                raise HostNotAllowed(f"The host {host!r} is outside the networks this server may connect to.")
    if not settings.SMTP_ALLOW_PRIVATE_HOSTS:
        for raw in addresses:
            address = ipaddress.ip_address(raw.split("%", 1)[0])
            if not is_public(address):
                raise HostNotAllowed(
                    f"The host {host!r} resolves to a private, loopback or reserved address; "
                    "3drake only connects to public SMTP servers."
                )
    return Target(hostname=host, address=addresses[0], port=port)

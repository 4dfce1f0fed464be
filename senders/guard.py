"""The SMTP host guard: every outgoing SMTP connection (verify and delivery) passes through here.

A customer chooses the host we connect to, which makes every SMTP connection a potential SSRF:
to cloud metadata, to our own database, to anything on our private network. So:

- the host is resolved once here, and *every* address it resolves to must be public (one
  private answer among public ones is refused: the connection could land on either);
- the caller connects to the address that was checked, never to the name again, so a DNS
  answer that changes between check and use (rebinding) cannot redirect it;
- the port must be in SMTP_ALLOWED_PORTS;
- a caller with a deadline (verify answers an HTTP request; a delivery ends by its time limit)
  waits for the name's lookup at most until then: the system resolver's own bound (resolv.conf:
  timeout x attempts x name servers) can be 30 s and more, past gunicorn's worker timeout.

SMTP_ALLOW_PRIVATE_HOSTS lifts the address rule (tests, self-hosting); ports still apply.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
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


class LookupTimedOut(HostNotAllowed):
    """The host's DNS lookup did not answer within the caller's time, or the resolver gave up on
    its name servers first (EAI_AGAIN): worth trying again later."""


@dataclass(frozen=True)
class Target:
    """A checked destination: connect to `address` (or, if it does not answer, to each of
    `others` in turn: every one checked as it is), verify TLS against `hostname`."""

    hostname: str
    address: str
    port: int
    others: tuple[str, ...] = ()


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


# At most this many lookups run at once in a process (a worker's 16 delivery threads share them;
# an answering resolver frees one in milliseconds). A DNS outage holds each until the resolver
# gives up, whoever stopped waiting: bounded, it cannot grow a thread per attempt.
LOOKUP_THREADS = 8
_lookup_slots = threading.BoundedSemaphore(LOOKUP_THREADS)
_lookups_lock = threading.Lock()
_lookups: dict[tuple[str, int], _Lookup] = {}


class _Lookup:
    """One getaddrinfo in a thread of its own, whose answer every caller asking for the same
    name meanwhile waits for: a customer retrying a name whose servers do not answer holds one
    thread, not one per try. A daemon thread: a lookup nobody waits for any more must not hold
    the process's exit (a pool's threads are joined at exit) until the resolver gives up."""

    def __init__(self, host: str, port: int) -> None:
        self.key = (host, port)
        self.done = threading.Event()
        self.infos: list[tuple] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.infos = socket.getaddrinfo(*self.key, type=socket.SOCK_STREAM)
        except BaseException as exc:  # Raised to each caller, in its own thread.
            self.error = exc
        finally:
            with _lookups_lock:
                if _lookups.get(self.key) is self:
                    del _lookups[self.key]
            _lookup_slots.release()
            self.done.set()


def _lookup(host: str, port: int, deadline: float) -> list[tuple]:
    """getaddrinfo for `host`, waiting at most until `deadline` (time.monotonic()) for the answer
    and, with every lookup thread busy, for one to free. Raises LookupTimedOut past it."""
    key = (host, port)
    with _lookups_lock:
        lookup = _lookups.get(key)
    if lookup is None:
        if not _lookup_slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise _timed_out(host)
        with _lookups_lock:
            lookup = _lookups.get(key)
            start = lookup is None
            if start:
                lookup = _lookups[key] = _Lookup(host, port)
        if not start:  # Another caller started it meanwhile.
            _lookup_slots.release()
        else:
            try:
                threading.Thread(target=lookup.run, name="smtp-dns-lookup", daemon=True).start()
            except BaseException as exc:  # No thread (RuntimeError): nobody may wait for this one.
                lookup.error = exc
                with _lookups_lock:
                    del _lookups[key]
                _lookup_slots.release()
                lookup.done.set()
                raise
    if not lookup.done.wait(max(0.0, deadline - time.monotonic())):
        raise _timed_out(host)
    if lookup.error is not None:
        error = lookup.error
        if isinstance(error, socket.gaierror):
            # A copy per caller: one exception raised in several threads would share its traceback.
            raise socket.gaierror(*error.args)
        raise error
    return lookup.infos


def _timed_out(host: str) -> LookupTimedOut:
    return LookupTimedOut(f"The DNS lookup of {host!r} timed out: its name servers did not answer in time.")


def _numeric(host: str, port: int) -> list[tuple] | None:
    """The address of a numeric host (127.1 and 0x7f000001 included), asking no DNS: no thread
    for it. None for a name."""
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        return None


def resolve(host: str, port: int, *, deadline: float | None = None) -> list[str]:
    """All addresses `host` resolves to (numeric forms like 127.1 and 0x7f000001 included).

    With `deadline` (time.monotonic()) the lookup of a name ends by then (LookupTimedOut);
    without, it takes the resolver's own time."""
    try:
        infos = _numeric(host, port)
        if infos is None:
            infos = (
                socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
                if deadline is None
                else _lookup(host, port, deadline)
            )
    except socket.gaierror as exc:
        if exc.errno == socket.EAI_AGAIN:
            # What glibc answers once its name servers time out (resolv.conf's bound, shorter than
            # a delivery's time limit) or fail (SERVFAIL): the name may resolve on another try.
            raise LookupTimedOut(
                f"The DNS lookup of {host!r} timed out or failed for now: its name servers did not answer."
            ) from exc
        raise HostNotAllowed(f"The host {host!r} does not resolve.") from exc
    except UnicodeError as exc:
        raise HostNotAllowed(f"The host {host!r} does not resolve.") from exc
    # getaddrinfo may repeat an address per socket type; keep the order, drop the repeats.
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check(host: str, port: int, *, deadline: float | None = None) -> Target:
    """Resolve and check `host:port`; return the address to connect to.

    Raises HostNotAllowed for a disallowed port, a name that does not resolve, or any
    non-public address (unless SMTP_ALLOW_PRIVATE_HOSTS); its subclass LookupTimedOut for a
    name whose lookup did not answer by `deadline` (time.monotonic(); None: the resolver's time).
    """
    check_port(port)
    host = host.strip().rstrip(".")
    if not host:
        raise HostNotAllowed("The SMTP host is empty.")
    addresses = resolve(host, port, deadline=deadline)
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
    return Target(hostname=host, address=addresses[0], port=port, others=tuple(addresses[1:]))

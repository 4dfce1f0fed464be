"""The SMTP host guard refuses every non-public destination, however it is spelled."""

import ipaddress
import socket
import time

import pytest
from django.test import override_settings

from senders import guard

REFUSED_LITERALS = [
    "127.0.0.1",
    "127.1",
    "2130706433",
    "0x7f000001",
    "::1",
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",  # noqa: S104  (a destination the guard must refuse, not a bind)
    "::ffff:127.0.0.1",
    "64:ff9b::a9fe:a9fe",
    "fe80::1",
    "fd00::1",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "2002:7f00:1::1",
    # IETF protocol assignments (RFC 6890), which Python 3.11 counts as global but for .0-.7
    # and .170-.171.
    "192.0.0.8",
    "192.0.0.255",
    "::ffff:192.0.0.8",
]


@pytest.fixture(autouse=True)
def _public_only(settings):
    # These tests resolve literals and stub DNS answers; the one that "connects" fakes the socket.
    settings.SMTP_ALLOWED_NETWORKS = []
    settings.SMTP_ALLOW_PRIVATE_HOSTS = False
    settings.SMTP_ALLOWED_PORTS = "25,465,587,2525"


@pytest.mark.parametrize("host", REFUSED_LITERALS)
def test_it_refuses_non_public_addresses(host):
    with pytest.raises(guard.HostNotAllowed, match="private, loopback or reserved"):
        guard.check(host, 587)


class StubResolver:
    """Stands in for DNS: answers each lookup of a name from a script of answers."""

    def __init__(self, answers: dict[str, list[list[str]]]):
        self.answers = {name: list(script) for name, script in answers.items()}
        self.lookups: list[str] = []

    def __call__(self, host, port, *args, **kwargs):
        self.lookups.append(host)
        script = self.answers[host]
        addresses = script.pop(0) if len(script) > 1 else script[0]
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses
        ]


def test_it_refuses_a_name_that_resolves_to_a_private_address(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", StubResolver({"smtp.evil.test": [["10.0.0.5"]]}))
    with pytest.raises(guard.HostNotAllowed):
        guard.check("smtp.evil.test", 587)


def test_it_refuses_a_name_with_a_public_and_a_private_address(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", StubResolver({"mixed.test": [["8.8.4.4", "127.0.0.1"]]}))
    with pytest.raises(guard.HostNotAllowed):
        guard.check("mixed.test", 587)


def test_it_pins_the_checked_address_against_rebinding(monkeypatch):
    # Public on the first lookup, private on every later one: a DNS rebinding attack.
    resolver = StubResolver({"rebind.test": [["8.8.4.4"], ["127.0.0.1"]]})
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    target = guard.check("rebind.test", 587)
    assert target == guard.Target(hostname="rebind.test", address="8.8.4.4", port=587)
    assert resolver.lookups == ["rebind.test"]


def test_the_connection_goes_to_the_checked_address(monkeypatch):
    """The SMTP client dials the address the guard checked and never looks the name up again."""
    from senders import smtp

    resolver = StubResolver({"rebind.test": [["8.8.4.4"], ["127.0.0.1"]]})
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    dialled = []

    def fake_create_connection(address, timeout=None, *args, **kwargs):
        dialled.append(address)
        raise ConnectionRefusedError(111, "refused")

    monkeypatch.setattr(socket, "create_connection", fake_create_connection)
    with pytest.raises(smtp.SmtpFailure) as failure:
        smtp.open_connection(host="rebind.test", port=587, security="starttls", username="u", password="p", timeout=1)
    assert failure.value.category == "connection_failed"
    assert dialled == [("8.8.4.4", 587)]
    assert resolver.lookups == ["rebind.test"]


def test_it_accepts_a_public_address():
    # A literal resolves without DNS, so this sends no traffic.
    assert guard.check("8.8.8.8", 587).address == "8.8.8.8"


@pytest.mark.parametrize("port", [22, 80, 6379, 5432, 0, 70000])
def test_it_refuses_ports_outside_the_allowed_list(port):
    with pytest.raises(guard.HostNotAllowed, match="Port"):
        guard.check("8.8.8.8", port)


@override_settings(SMTP_ALLOWED_PORTS="*")
def test_a_star_allows_any_port():
    assert guard.check("8.8.8.8", 2526).port == 2526


@override_settings(SMTP_ALLOW_PRIVATE_HOSTS=True)
def test_private_hosts_can_be_allowed_for_self_hosting():
    assert guard.check("127.0.0.1", 587).address == "127.0.0.1"


def test_a_name_that_does_not_resolve_is_refused(monkeypatch):
    def fail(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(guard.HostNotAllowed, match="does not resolve"):
        guard.check("nowhere.test", 587)


def test_an_allowlist_of_networks_confines_every_connection(settings):
    settings.SMTP_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    with pytest.raises(guard.HostNotAllowed, match="outside the networks"):
        guard.check("8.8.8.8", 587)
    settings.SMTP_ALLOW_PRIVATE_HOSTS = True
    assert guard.check("127.0.0.1", 587).address == "127.0.0.1"


@pytest.mark.parametrize(
    "address",
    [
        "fec0::1",  # site-local (RFC 3879): deprecated, but local wherever it is still used
        # Local-use NAT64 (RFC 8215): where the IPv4 address sits depends on the prefix length
        # the network chose (with a /48, 10.0.x.x here); the guard read the last 32 bits, 8.8.8.8.
        "64:ff9b:1:0a00:0100::808:808",
        "64:ff9b:1::a9fe:a9fe",
    ],
)
def test_ranges_whose_destination_cannot_be_told_are_not_public(address):
    """Found by a review."""
    assert not guard.is_public(ipaddress.ip_address(address))


# --- Name lookups under a deadline --------------------------------------------------------
# Name servers that do not answer are simulated (conftest's hanging_dns: socket.getaddrinfo
# hangs for the test's names, drake.testing.dns); a real one would need another resolv.conf.


def _soon(seconds: float = 0.2) -> float:
    return time.monotonic() + seconds


def test_a_lookup_that_does_not_answer_ends_by_the_deadline(hanging_dns):
    started = time.monotonic()
    with pytest.raises(guard.LookupTimedOut, match="DNS lookup of 'smtp.alice.test' timed out"):
        guard.check("smtp.alice.test", 587, deadline=_soon(0.3))
    assert 0.3 <= time.monotonic() - started < 0.3 + 0.2
    # The same kind of refusal as a name that does not resolve, for every caller that handles one.
    assert issubclass(guard.LookupTimedOut, guard.HostNotAllowed)


@pytest.mark.parametrize("deadline", [None, 2])
def test_a_resolver_that_gave_up_on_its_name_servers_may_answer_later(hanging_dns, deadline):
    """EAI_AGAIN: the resolver's own timeout (resolv.conf), often shorter than a delivery's
    deadline, or a SERVFAIL. Not a name that does not exist: that one stays refused as not
    resolving (test_a_name_that_does_not_resolve_is_refused)."""
    hanging_dns.give_up = 0
    with pytest.raises(guard.LookupTimedOut, match="timed out or failed for now"):
        guard.check("smtp.alice.test", 587, deadline=deadline and _soon(deadline))


@pytest.mark.parametrize("host", ["8.8.8.8", "134744072", "0x08080808", "2001:4860:4860::8888"])
def test_a_numeric_host_takes_no_lookup_thread(host, monkeypatch):
    def no_thread(*args, **kwargs):
        raise AssertionError("a numeric host asks no DNS: no lookup thread for it")

    monkeypatch.setattr(guard, "_lookup", no_thread)
    assert guard.check(host, 587, deadline=_soon()).address in {"8.8.8.8", "2001:4860:4860::8888"}


def test_the_checks_are_the_same_under_a_deadline(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", StubResolver({"mixed.test": [["8.8.4.4", "127.0.0.1"]]}))
    with pytest.raises(guard.HostNotAllowed, match="private, loopback or reserved"):
        guard.check("mixed.test", 587, deadline=_soon(2))
    resolver = StubResolver({"rebind.test": [["8.8.4.4"], ["127.0.0.1"]]})
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    assert guard.check("rebind.test", 587, deadline=_soon(2)) == guard.Target("rebind.test", "8.8.4.4", 587)
    assert resolver.lookups == ["rebind.test"]


def test_a_name_asked_again_while_its_lookup_hangs_holds_no_more_threads(hanging_dns):
    """A customer clicking verify again and again on a host whose DNS does not answer: each
    try waits for the one lookup still running, instead of starting another."""
    for _ in range(3):
        with pytest.raises(guard.LookupTimedOut):
            guard.check("smtp.alice.test", 587, deadline=_soon(0.05))
    assert hanging_dns.hung == ["smtp.alice.test"]
    assert hanging_dns.running == 1


def test_a_dns_outage_holds_a_bounded_number_of_threads(hanging_dns, settings):
    """Every name's lookup hangs: at most LOOKUP_THREADS run; a caller finding them all busy
    waits for one within its time, then times out without starting another."""
    names = [f"smtp{i}.outage.test" for i in range(guard.LOOKUP_THREADS + 3)]
    hanging_dns.names.update(names)
    for name in names:
        with pytest.raises(guard.LookupTimedOut):
            guard.check(name, 587, deadline=_soon(0.05))
    assert hanging_dns.running == guard.LOOKUP_THREADS
    assert hanging_dns.hung == names[: guard.LOOKUP_THREADS]
    # Once the resolver gives up on them, their threads are free for lookups that answer.
    hanging_dns.release()
    settings.SMTP_ALLOW_PRIVATE_HOSTS = True
    assert guard.check("localhost", 587, deadline=_soon(2)).address == "127.0.0.1"

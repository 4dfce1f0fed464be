"""The rules of a sender's configuration, shared by the API serializer and the console form."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from django.conf import settings

from senders import guard
from senders.presets import PRESETS, Provider, Security

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*\.?$"
)
MAX_SECRET_LENGTH = 512


class ConfigError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _no_newlines(field: str, value: str) -> None:
    if "\r" in value or "\n" in value:
        raise ConfigError(field, "Line breaks are not allowed here.")


def check_login(field: str, value: str) -> None:
    """SMTP login as 3drake speaks it (smtplib's PLAIN, LOGIN and CRAM-MD5) carries ASCII only:
    a username or password with any other character could never log in."""
    if not value.isascii():
        raise ConfigError(field, "SMTP login carries ASCII characters only (letters, digits and punctuation).")


def _ascii_domain(address: str) -> str:
    """`local@domain` with the domain in IDNA (punycode), as it must go into MAIL FROM and the
    From header: no provider is asked for SMTPUTF8 (relay.validation's rule for recipients, an
    ASCII local part and 254 characters at most included)."""
    from relay.validation import UnwritableAddress, wire_address

    try:
        return wire_address(address)
    except UnwritableAddress as exc:
        raise ConfigError("from_email", str(exc)) from exc


def _host(value: str) -> str:
    host = (value or "").strip()
    if not host:
        raise ConfigError("host", "The SMTP host is required for a custom SMTP sender.")
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        if not settings.SMTP_ALLOW_PRIVATE_HOSTS and not guard.is_public(literal):
            raise ConfigError("host", "This address is private, loopback or reserved; use your provider's public host.")
        return str(literal)
    from relay.validation import ascii_domain

    try:
        ascii_host = ascii_domain(host)
    except UnicodeError as exc:
        raise ConfigError("host", "This is not a valid host name.") from exc
    if not _HOSTNAME.match(ascii_host):
        raise ConfigError(
            "host", "This is not a valid host name (no scheme, port or path: just e.g. smtp.example.com)."
        )
    return ascii_host.rstrip(".").lower()


def resolve_config(data: dict[str, Any]) -> dict[str, Any]:
    """Complete and check a sender configuration: presets fill Gmail/Outlook, SMTP needs all three.

    `data` has provider, from_email, and optionally from_name, username, host, port, security.
    Returns the complete connection settings; raises ConfigError naming the field at fault.
    """
    provider = data.get("provider")
    from_email = data["from_email"]
    _no_newlines("from_email", from_email)
    from_email = _ascii_domain(from_email)
    _no_newlines("from_name", data.get("from_name") or "")
    # In a From name the email package wrote what an encoded word hides: a line break (every
    # message of the sender failed) or a second address.
    from relay.validation import holds_encoded_word

    if holds_encoded_word(data.get("from_name") or ""):
        raise ConfigError("from_name", "Give the name as plain text; 3drake encodes it.")
    _no_newlines("username", data.get("username") or "")
    check_login("username", data.get("username") or "")
    result: dict[str, Any] = {
        "provider": provider,
        "from_email": from_email,
        "from_name": (data.get("from_name") or "").strip(),
        "username": (data.get("username") or "").strip() or from_email,
    }
    if provider in PRESETS:
        preset = PRESETS[provider]
        if data.get("host") and data["host"].strip().lower() != preset.host:
            raise ConfigError("host", f"The host of a {provider} sender is always {preset.host}.")
        allowed = {(preset.port, preset.security), *preset.alternatives}
        port = data.get("port") or preset.port
        security = data.get("security") or next((s for p, s in allowed if p == port), preset.security)
        if (port, security) not in allowed:
            options = ", ".join(f"{p} with {s}" for p, s in sorted(allowed))
            raise ConfigError("port", f"{provider} accepts {options}.")
        result.update(host=preset.host, port=port, security=security)
        return result
    if provider != Provider.SMTP:
        raise ConfigError("provider", "Choose gmail, outlook or smtp.")
    for field, label in (("host", "The SMTP host"), ("port", "The port"), ("security", "The security mode")):
        if not data.get(field):
            raise ConfigError(field, f"{label} is required for a custom SMTP sender.")
    host = _host(data["host"])
    port = int(data["port"])
    try:
        guard.check_port(port)
    except guard.HostNotAllowed as exc:
        raise ConfigError("port", str(exc)) from exc
    security = data["security"]
    if security not in dict(Security.CHOICES):
        raise ConfigError("security", "Choose starttls, tls or none.")
    if security == Security.NONE and not settings.SMTP_ALLOW_PRIVATE_HOSTS:
        raise ConfigError(
            "security", "A password is never sent without TLS to a public server: choose starttls or tls."
        )
    result.update(host=host, port=port, security=security)
    return result

"""Provider presets and the hints a person can act on when a provider says no."""

from __future__ import annotations

from dataclasses import dataclass


class Provider:
    GMAIL = "gmail"
    OUTLOOK = "outlook"
    SMTP = "smtp"
    CHOICES = ((GMAIL, "Gmail / Google Workspace"), (OUTLOOK, "Microsoft 365 (Outlook)"), (SMTP, "Any SMTP server"))


class Security:
    STARTTLS = "starttls"
    TLS = "tls"
    NONE = "none"
    CHOICES = ((STARTTLS, "STARTTLS"), (TLS, "TLS (implicit, usually port 465)"), (NONE, "None (private hosts only)"))


@dataclass(frozen=True)
class Preset:
    host: str
    port: int
    security: str
    # Other (port, security) pairs the provider accepts.
    alternatives: tuple[tuple[int, str], ...]
    help: str


PRESETS: dict[str, Preset] = {
    Provider.GMAIL: Preset(
        host="smtp.gmail.com",
        port=587,
        security=Security.STARTTLS,
        alternatives=((465, Security.TLS),),
        help=(
            "Use an app password, not your Google password: turn on 2-Step Verification, then create "
            "one at myaccount.google.com/apppasswords and paste the 16 characters here."
        ),
    ),
    Provider.OUTLOOK: Preset(
        host="smtp.office365.com",
        port=587,
        security=Security.STARTTLS,
        alternatives=(),
        help=(
            "For Microsoft 365 work or school mailboxes. Personal outlook.com and hotmail.com accounts no "
            "longer accept app passwords. Microsoft is turning password SMTP AUTH off by default from the "
            "end of 2026: your administrator must allow SMTP AUTH for this mailbox, and you need an app "
            "password if multi-factor authentication is on."
        ),
    ),
}


@dataclass(frozen=True)
class Limits:
    per_minute: int
    per_day: int
    recipients_per_message: int
    connections: int


# Provider sending limits (defaults; each sender can lower or raise them).
# Gmail / Workspace over SMTP: 2,000 messages per rolling 24 h, 100 recipients per message.
# Microsoft 365: 30 messages per minute, 10,000 recipients per 24 h, 500 recipients per message,
# at most 3 concurrent connections per mailbox (more gets "432 4.3.2").
LIMITS: dict[str, Limits] = {
    Provider.GMAIL: Limits(per_minute=60, per_day=2000, recipients_per_message=100, connections=3),
    Provider.OUTLOOK: Limits(per_minute=30, per_day=10000, recipients_per_message=500, connections=3),
    Provider.SMTP: Limits(per_minute=600, per_day=100000, recipients_per_message=1000, connections=10),
}

GMAIL_APP_PASSWORD_HINT = (
    "Gmail wants an app password: turn on 2-Step Verification for the Google account, create an app "
    "password at myaccount.google.com/apppasswords, and use it instead of the account password."
)
OUTLOOK_SMTP_AUTH_HINT = (
    "Microsoft 365 has SMTP AUTH turned off for this mailbox (550 5.7.30). An administrator can turn on "
    "'Authenticated SMTP' for it in the Microsoft 365 admin center (Users → Mail → Manage email apps). "
    "Microsoft is turning it off by default from the end of 2026."
)


def hint_for(provider: str, smtp_code: int | None, text: str, category: str) -> str:
    """A sentence a person can act on, for a provider's refusal."""
    lowered = text.lower()
    if provider == Provider.GMAIL and (smtp_code == 534 or "5.7.9" in lowered or "application-specific" in lowered):
        return GMAIL_APP_PASSWORD_HINT
    if provider == Provider.OUTLOOK and "5.7.30" in lowered:
        return OUTLOOK_SMTP_AUTH_HINT
    if category == "auth_failed":
        if provider == Provider.GMAIL:
            return "The username or app password was refused. " + GMAIL_APP_PASSWORD_HINT
        if provider == Provider.OUTLOOK:
            return (
                "The username or password was refused. Use the full mailbox address as the username and an "
                "app password if multi-factor authentication is on; SMTP AUTH must be allowed for the mailbox."
            )
        return "The server refused the username or password. Check both with your provider."
    if category == "tls_failed":
        return "The TLS handshake failed or the certificate did not verify for this host name. Check host, port and security."
    if category == "timeout":
        return "The server did not answer in time. Check host and port, and that the server accepts connections from the internet."
    if category == "connection_failed":
        return "Could not connect. Check host and port."
    if category == "host_not_allowed":
        if "dns lookup" in lowered:
            return "The host's name servers did not answer. Check the host name, or try again in a few minutes."
        return "Use the public host name of your provider's SMTP server."
    return "The server refused. Its reply is shown above."

"""Staff roles: least privilege, as data. `setup_roles` makes the groups match this exactly."""

from __future__ import annotations

ROLES: dict[str, list[str]] = {
    # Support sees accounts, sender metadata, message logs and usage; suspends accounts, resets a
    # customer's two-factor, revokes keys, pauses senders and disables them, and lifts a disabled sender's address block (each through an
    # admin action that asks for a reason). No billing.
    "Support": [
        "accounts.view_user",
        "accounts.suspend_account",
        "accounts.reset_two_factor",
        "accounts.view_apikey",
        "accounts.revoke_apikey",
        "senders.view_sender",
        "senders.pause_sender",
        "senders.disable_sender",
        "senders.view_addressblock",
        "relay.view_message",
        "relay.view_deliveryattempt",
        "relay.view_apirequest",
        "auditlog.view_auditevent",
    ],
    # Finance sees plans, subscriptions, invoices and Stripe events, and exports them as CSV.
    "Finance": [
        "billing.view_plan",
        "billing.view_subscription",
        "billing.view_invoice",
        "billing.view_stripeevent",
    ],
}

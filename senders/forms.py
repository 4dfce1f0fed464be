from __future__ import annotations

from typing import Any

from django import forms

from senders.models import Sender
from senders.presets import PRESETS, Provider, Security
from senders.validation import MAX_SECRET_LENGTH


class SenderForm(forms.Form):
    provider = forms.ChoiceField(choices=Provider.CHOICES, widget=forms.RadioSelect, initial=Provider.GMAIL)
    from_email = forms.EmailField(label="From address", max_length=254)
    from_name = forms.CharField(
        label="From name", max_length=100, required=False, help_text="Optional, e.g. “Acme Support”."
    )
    username = forms.CharField(max_length=254, required=False, help_text="Defaults to the From address.")
    password = forms.CharField(
        label="App password or SMTP password",
        max_length=MAX_SECRET_LENGTH,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted. Never shown again, not even to us.",
    )
    host = forms.CharField(label="SMTP host", max_length=253, required=False, help_text="Custom SMTP only.")
    port = forms.IntegerField(
        min_value=1, max_value=65535, required=False, help_text="Custom SMTP only; Gmail may use 465."
    )
    security = forms.ChoiceField(choices=(("", "—"), *Security.CHOICES), required=False, help_text="Custom SMTP only.")


class SenderSettingsForm(forms.Form):
    """The sender page's settings: the From address and name, the server (custom SMTP only), the
    username and a new password.

    It only parses; the rules (the host guard, SMTP_ALLOWED_PORTS, presets) are
    senders.validation's, applied by senders.actions.update_sender as for the API's PATCH. So
    the server fields are not required here: an empty one gets that rule's message. A Gmail or
    Outlook sender's server is its preset and is not a field at all, whatever is posted.
    """

    from_email = SenderForm.base_fields["from_email"]
    from_name = SenderForm.base_fields["from_name"]
    host = forms.CharField(label="SMTP host", max_length=253, required=False)
    port = forms.IntegerField(min_value=1, max_value=65535, required=False)
    security = forms.ChoiceField(choices=(("", "—"), *Security.CHOICES), required=False)
    username = forms.CharField(max_length=254, required=False, help_text="Defaults to the From address.")
    password = forms.CharField(
        label="New password",
        max_length=MAX_SECRET_LENGTH,
        required=False,
        strip=False,
        # Write-only: the stored password is never rendered back (render_value stays False).
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Leave empty to keep the stored password.",
    )

    def __init__(self, sender: Sender, *args: Any, **kwargs: Any) -> None:
        initial = {
            name: getattr(sender, name) for name in ("from_email", "from_name", "host", "port", "security", "username")
        }
        super().__init__(*args, initial=initial, **kwargs)
        if sender.provider in PRESETS:
            for name in ("host", "port", "security"):
                del self.fields[name]
            self.fields["password"].label = "New app password"

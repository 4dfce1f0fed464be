from __future__ import annotations

from django import forms

from senders.presets import Provider, Security
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


class CredentialsForm(forms.Form):
    username = forms.CharField(max_length=254, required=False)
    password = forms.CharField(
        label="New app password",
        max_length=MAX_SECRET_LENGTH,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

"""Console forms for accounts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from django import forms
from django.contrib.auth import forms as auth_forms
from django.contrib.auth import password_validation
from django.contrib.auth.forms import AuthenticationForm
from django.db.models import Q

from accounts.models import User


class LoginForm(AuthenticationForm):
    username = forms.EmailField(
        label="Email", widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"})
    )
    error_messages = {
        # The same words whether or not the email has an account.
        "invalid_login": "That email and password do not match an account. Check both and try again.",
        "inactive": "That email and password do not match an account. Check both and try again.",
    }


class SignupForm(forms.Form):
    email = forms.EmailField(
        max_length=254,  # What the account's email column holds (and EmailChangeForm allows).
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}),
    )
    name = forms.CharField(max_length=150, required=False, help_text="Optional.")
    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html(),
    )

    def clean(self) -> dict:
        data = super().clean()
        password = data.get("password")
        if password:
            candidate = User(email=data.get("email", ""), name=data.get("name", ""))
            try:
                password_validation.validate_password(password, candidate)
            except forms.ValidationError as exc:
                self.add_error("password", exc)
        return data


class ProfileForm(forms.ModelForm):
    class Meta:
        model = User
        fields = ("name",)


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What uses this key, e.g. “production web app”.")


class TokenForm(forms.Form):
    code = forms.CharField(
        label="6-digit code from your authenticator app",
        max_length=10,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}),
    )


class ConfirmPasswordForm(forms.Form):
    """Re-authentication before something sensitive (export, deletion)."""

    password = forms.CharField(
        label="Your password", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )

    def __init__(self, user: User, *args: object, **kwargs: object) -> None:
        self.user = user
        super().__init__(*args, **kwargs)

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        if not self.user.check_password(password):
            raise forms.ValidationError("That is not your password.")
        return password


class ActivationForm(ConfirmPasswordForm):
    """The activation link's second half: the password chosen at sign-up. The link alone proves
    the mailbox, not who chose the password (anyone can sign up someone else's address)."""

    password = forms.CharField(
        label="The password you chose when you signed up",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
    )

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        if not self.user.check_password(password):
            raise forms.ValidationError("That is not the password this account was signed up with.")
        return password


class DeleteAccountForm(ConfirmPasswordForm):
    confirm = forms.CharField(label='Type "delete my account" to confirm', max_length=40)

    def clean_confirm(self) -> str:
        if self.cleaned_data["confirm"].strip().lower() != "delete my account":
            raise forms.ValidationError("Type exactly: delete my account")
        return self.cleaned_data["confirm"]


class EmailChangeForm(ConfirmPasswordForm):
    new_email = forms.EmailField(label="New email address", max_length=254)


class PasswordResetForm(auth_forms.PasswordResetForm):
    """Django's, for accounts never activated too: their owner (who missed the activation link,
    or whose address someone else signed up) sets a password of their own, which activates the
    account (accounts.views.PasswordResetConfirmView). Django's mails active accounts only, so
    after the link's two hours nothing could ever make that address an account."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unsent: list[Callable[[], None]] = []

    def get_users(self, email: str) -> Iterator[Any]:
        # Not an account staff deactivated (activated once, inactive now): no link, as Django's.
        users = User.objects.filter(Q(is_active=True) | Q(activated_at__isnull=True), email__iexact=email)
        return (u for u in users if u.has_usable_password() and u.email.casefold() == email.casefold())

    def send_mail(self, *args: Any, **kwargs: Any) -> None:
        """Kept for after the response (PasswordResetView): sent in the request, a known
        address's mail (a mail server's few hundred milliseconds) made its answer slower than an
        unknown one's, which the page's same words did not hide."""
        self.unsent.append(partial(super().send_mail, *args, **kwargs))

"""Console views for accounts: sign-up, login, profile and API keys. Thin adapters over actions."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login, logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.forms.utils import ErrorDict
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.decorators import method_decorator
from django.utils.http import urlsafe_base64_decode
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods
from django_ratelimit.decorators import ratelimit

from accounts import actions, mail, privacy, throttles, twofactor
from accounts.forms import (
    ActivationForm,
    ApiKeyForm,
    ConfirmPasswordForm,
    DeleteAccountForm,
    EmailChangeForm,
    LoginForm,
    PasswordResetForm,
    ProfileForm,
    SignupForm,
    TokenForm,
)
from accounts.models import ApiKey, User
from auditlog.events import record

logger = logging.getLogger(__name__)

THROTTLED_MESSAGE = "Too many attempts. Wait a minute, then try again."


def ratelimited(request: HttpRequest, exception: Exception) -> HttpResponse:
    """RATELIMIT_VIEW: a console page hit too often."""
    return render(request, "accounts/throttled.html", {"message": THROTTLED_MESSAGE}, status=429)


def mail_unavailable(request: HttpRequest, exc: mail.MailUnavailable) -> HttpResponse:
    """Our own mail server cannot take a mail this page sends: 503, nothing changed (it was a
    500). The same page for every address, as the mail's own answers are."""
    logger.warning("The console's mail could not be sent: %s", exc)
    response = render(request, "unavailable.html", status=503)
    response["Retry-After"] = "60"
    return response


@method_decorator(sensitive_post_parameters("password"), name="dispatch")
class LoginView(auth_views.LoginView):
    """Login, throttled per IP and per account against credential stuffing (accounts.throttles,
    shared with the back office's login).

    Over the limit, the form is not even checked, so a right password during the lock-out does
    not tell an attacker that it was right.
    """

    form_class = LoginForm
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if throttles.login_limited(request):
            form = self.get_form()
            # Not cleaned: reading form.errors would clean it, and cleaning checks the password.
            form._errors, form.cleaned_data = ErrorDict(), {}
            form.add_error(None, THROTTLED_MESSAGE)
            record("login.throttled", request=request, detail={"email_domain": throttles.email_domain(request)})
            return self.render_to_response(self.get_context_data(form=form), status=429)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form: LoginForm) -> HttpResponse:
        user = form.get_user()
        if twofactor.confirmed_device(user) is not None:
            # The password was right; the session is not logged in until the code is too.
            self.request.session[PENDING_2FA] = {
                "user": user.pk,
                "next": self.get_success_url(),
                "at": time.time(),
                "auth": user.get_session_auth_hash(),
            }
            return redirect("accounts:login_verify")
        response = super().form_valid(form)
        record("login.succeeded", actor=self.request.user, account=self.request.user, request=self.request)
        return response

    def form_invalid(self, form: LoginForm) -> HttpResponse:
        # The address as the form cleaned it (a NUL, say, is refused there): never the raw input.
        email = form.cleaned_data.get("username")
        user = get_user_model().objects.filter(email__iexact=email).first() if email else None
        # Audited against the account it targeted, if any; the page says the same either way.
        record("login.failed", account=user, request=self.request)
        return super().form_invalid(form)


PENDING_2FA = "drake_pending_2fa"
# How long a right password waits for its code. The code is the second factor only while the
# password step is recent and still true: without a bound, a session that once passed the
# password (a shared computer's, a stolen cookie) needed only a code, days later, after the
# password was changed.
PENDING_2FA_SECONDS = 10 * 60


def _pending_sign_in(request: HttpRequest) -> User | None:
    """The account whose password this session gave, if recent and not changed since."""
    pending = request.session.get(PENDING_2FA)
    if not pending:
        return None
    user = User.objects.filter(pk=pending["user"], is_active=True).first()
    fresh = time.time() - pending.get("at", 0) < PENDING_2FA_SECONDS
    if user is None or not fresh or pending.get("auth") != user.get_session_auth_hash():
        del request.session[PENDING_2FA]
        return None
    return user


@never_cache
@ratelimit(key="ip", rate=lambda g, r: settings.LOGIN_RATE_PER_IP, method="POST", block=False)
@require_http_methods(["GET", "POST"])
def login_verify(request: HttpRequest) -> HttpResponse:
    """The second step of a login with two-factor authentication on."""
    pending = request.session.get(PENDING_2FA)
    user = _pending_sign_in(request)
    device = twofactor.confirmed_device(user) if user else None
    if device is None:
        if pending:
            messages.info(request, "Your sign-in timed out. Enter your password again.")
        return redirect("accounts:login")
    form = TokenForm(request.POST or None)
    if request.method == "POST":
        if getattr(request, "limited", False):
            form.add_error(None, THROTTLED_MESSAGE)
            return render(request, "accounts/login_verify.html", {"form": form}, status=429)
        refusal = twofactor.refusal(device)
        if form.is_valid() and twofactor.verify(device, form.cleaned_data["code"]):
            del request.session[PENDING_2FA]
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            twofactor.otp_login(request, device)
            record("login.succeeded", actor=user, account=user, request=request, detail={"second_factor": True})
            return redirect(pending.get("next") or "accounts:dashboard")
        record("login.failed", account=user, request=request, detail={"second_factor": True})
        form.add_error("code", refusal)
    return render(request, "accounts/login_verify.html", {"form": form})


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def two_factor(request: HttpRequest) -> HttpResponse:
    device = twofactor.confirmed_device(request.user)
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        code = form.cleaned_data["code"]
        target = device or twofactor.pending_device(request.user)
        refusal = twofactor.refusal(target)
        if device is not None:
            if twofactor.disable(request.user, code, request=request):
                messages.success(request, "Two-factor authentication is off.")
                return redirect("accounts:two_factor")
        else:
            if twofactor.enable(request.user, target, code, request=request):
                messages.success(request, "Two-factor authentication is on. You will be asked for a code at sign-in.")
                return redirect("accounts:two_factor")
        form.add_error("code", refusal)
    context = {"form": form, "enabled": device is not None}
    if device is None:
        pending = twofactor.pending_device(request.user)
        context.update(qr=twofactor.qr_svg(pending), secret=twofactor.secret_base32(pending))
    return render(request, "accounts/two_factor.html", context)


@login_required
def activity(request: HttpRequest) -> HttpResponse:
    from auditlog.models import AuditEvent

    events = list(AuditEvent.objects.for_account(request.user).select_related("actor")[:100])
    for event in events:
        event.shown_ip = AuditEvent.ip_shown_to_account(
            event.actor_id, event.actor_ip, request.user.pk, event.actor_is_staff
        )
    return render(request, "accounts/activity.html", {"events": events})


# A form that asks a signed-in person for their password again is a password oracle too: as
# many tries per account as the login allows (a review found them unlimited), in the login's
# own bucket, so no form is a second allowance (each had one of its own, none the login's).
_password_confirmations = ratelimit(
    group="login.account",
    key=throttles.signed_in_account,
    rate=lambda g, r: settings.LOGIN_RATE_PER_ACCOUNT,
    method="POST",
    block=True,
)


@method_decorator(_password_confirmations, name="post")
class PasswordChangeView(auth_views.PasswordChangeView):
    """The console's password change; the back office serves its own page with this view too
    (DrakeAdminSite.password_change, `via="admin"`), in the same throttle bucket."""

    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("accounts:password_change_done")
    via = ""  # Where else than the console the change was made, for its audit event.

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        detail = {"via": self.via} if self.via else None
        record(
            "password.changed", actor=self.request.user, account=self.request.user, request=self.request, detail=detail
        )
        return response


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("accounts:login")

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        record("password.reset", actor_label=form.user.email, account=form.user, target=form.user, request=self.request)
        if not form.user.is_active and form.user.activated_at is None:
            # Never activated: the link proved the mailbox, and the password is the owner's own.
            # (One activated before and inactive now was deactivated by staff: it stays so.)
            actions.activate_account(form.user, request=self.request)
        messages.success(self.request, "Your new password is set. Sign in with it.")
        return response


@sensitive_post_parameters("password")
@login_required
@_password_confirmations
@require_http_methods(["GET", "POST"])
def export(request: HttpRequest) -> HttpResponse:
    """Download everything we hold about the account, after re-entering the password."""
    form = ConfirmPasswordForm(request.user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        privacy.export_requested(request.user, request=request)
        response = StreamingHttpResponse(privacy.export_chunks(request.user), content_type="application/json")
        response["Content-Disposition"] = 'attachment; filename="3drake-export.json"'
        response["Cache-Control"] = "no-store"
        return response
    return render(request, "accounts/export.html", {"form": form})


@sensitive_post_parameters("password")
@login_required
@_password_confirmations
@require_http_methods(["GET", "POST"])
def delete_account(request: HttpRequest) -> HttpResponse:
    form = DeleteAccountForm(request.user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = request.user
        try:
            privacy.delete_account(user, request=request, via="console")
        except privacy.DeletionBlocked as exc:
            form.add_error(None, f"Your account was not deleted: {exc} Please contact support.")
        else:
            logout(request)
            return render(request, "accounts/deleted.html")
    return render(request, "accounts/delete.html", {"form": form})


@sensitive_post_parameters("password")
@ratelimit(key="ip", rate=lambda g, r: settings.SIGNUP_RATE_PER_IP, method="POST", block=True)
@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("accounts:dashboard")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        activation = reverse("accounts:activate", kwargs={"uidb64": "UID", "token": "TOKEN"})
        try:
            actions.sign_up(
                form.cleaned_data["email"],
                form.cleaned_data["password"],
                name=form.cleaned_data["name"],
                request=request,
                activation_url=activation.replace("UID", "{uid}").replace("TOKEN", "{token}"),
            )
        except mail.MailUnavailable as exc:
            return mail_unavailable(request, exc)
        # Development's console backend prints the mail: only then is the terminal worth a word.
        printed = settings.EMAIL_BACKEND == "django.core.mail.backends.console.EmailBackend"
        return render(request, "accounts/signup_sent.html", {"email": form.cleaned_data["email"], "printed": printed})
    return render(request, "accounts/signup.html", {"form": form})


@never_cache
@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
def activate(request: HttpRequest, uidb64: str, token: str) -> HttpResponse:
    """The activation link asks for the password chosen at sign-up before it activates.

    A click alone activated and signed in: anyone could sign up someone else's address with a
    password of their own, and the owner's click on the mail then turned on an account whose
    password the squatter knew (a pre-account hijack). And mail scanners that open every link
    in a message (Outlook's Safe Links, for one) activated accounts nobody confirmed. The
    owner who did not sign up, or forgot the password, sets one of their own by a password
    reset, which activates the account too.
    """
    try:
        user = User.objects.get(pk=int(urlsafe_base64_decode(uidb64)))
    except (ValueError, TypeError, OverflowError, User.DoesNotExist):
        user = None
    # Only an inactive account's own activation token: never a password-reset token, which
    # would sign in without the second factor (or reactivate an account staff deactivated).
    if user is None or user.is_active or not actions.activation_tokens.check_token(user, token):
        return render(request, "accounts/activation_invalid.html", status=400)
    form = ActivationForm(user, request.POST or None)
    if request.method == "POST":
        if throttles.password_check_limited(request, user):
            form._errors, form.cleaned_data = ErrorDict(), {}  # Not cleaned: no password check.
            form.add_error(None, THROTTLED_MESSAGE)
            record("login.throttled", account=user, request=request, detail={"via": "activation"})
            return render(request, "accounts/activate.html", {"form": form, "email": user.email}, status=429)
        if form.is_valid():
            actions.activate_account(user, request=request)
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, "Your email is confirmed. Welcome to 3drake.")
            return redirect("accounts:dashboard")
        record("login.failed", account=user, request=request, detail={"via": "activation"})
    return render(request, "accounts/activate.html", {"form": form, "email": user.email})


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    from relay.usage import chart, usage_summary

    keys = ApiKey.objects.for_account(request.user).active()
    context = {
        "has_keys": keys.exists(),
        "has_senders": request.user.senders.exists(),
        "usage": usage_summary(request.user),
        "chart": chart(request.user),
    }
    return render(request, "accounts/dashboard.html", context)


@sensitive_post_parameters("password")
@login_required
@_password_confirmations  # The email change asks for the password.
@require_http_methods(["GET", "POST"])
def profile(request: HttpRequest) -> HttpResponse:
    is_email = request.method == "POST" and "new_email" in request.POST
    form = ProfileForm(request.POST if request.method == "POST" and not is_email else None, instance=request.user)
    email_form = EmailChangeForm(request.user, request.POST if is_email else None)
    if request.method == "POST" and not is_email and form.is_valid():
        form.save()
        messages.success(request, "Profile saved.")
        return redirect("accounts:profile")
    if is_email and email_form.is_valid():
        confirm = reverse("accounts:email_confirm", kwargs={"token": "TOKEN"}).replace("TOKEN", "{token}")
        try:
            actions.request_email_change(
                request.user, email_form.cleaned_data["new_email"], request=request, confirm_url=confirm
            )
        except mail.MailUnavailable as exc:
            return mail_unavailable(request, exc)
        messages.success(request, "Check the new address: the change happens when you follow the link we sent there.")
        return redirect("accounts:profile")
    return render(request, "accounts/profile.html", {"form": form, "email_form": email_form})


@never_cache
def email_confirm(request: HttpRequest, token: str) -> HttpResponse:
    user = actions.confirm_email_change(token, request=request)
    if user is None:
        return render(request, "accounts/activation_invalid.html", status=400)
    messages.success(request, f"Your email is now {user.email}.")
    return redirect("accounts:profile" if request.user.is_authenticated else "accounts:login")


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def api_keys(request: HttpRequest) -> HttpResponse:
    form = ApiKeyForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        key, raw = actions.create_api_key(request.user, form.cleaned_data["name"], request=request)
        # Rendered in this response only (no redirect): the raw key is never stored anywhere.
        created = {"key": key, "raw": raw}
        form = ApiKeyForm()
    keys = ApiKey.objects.for_account(request.user)
    return render(request, "accounts/api_keys.html", {"form": form, "keys": keys, "created": created})


@login_required
@require_http_methods(["GET", "POST"])
def revoke_api_key(request: HttpRequest, prefix: str) -> HttpResponse:
    key = get_object_or_404(ApiKey.objects.for_account(request.user), prefix=prefix)
    if request.method == "POST":
        if actions.revoke_api_key(key, actor=request.user, request=request):
            messages.success(request, f"Key {key.display_prefix}… revoked. Requests with it now get 401.")
        return redirect("accounts:api_keys")
    return render(request, "accounts/api_key_revoke.html", {"key": key})


@method_decorator(
    ratelimit(key="ip", rate=lambda g, r: settings.SIGNUP_RATE_PER_IP, method="POST", block=True), name="post"
)
class PasswordResetView(auth_views.PasswordResetView):
    form_class = PasswordResetForm
    template_name = "accounts/password_reset.html"
    email_template_name = "accounts/email/password_reset.txt"
    subject_template_name = "accounts/email/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:password_reset_done")

    def form_valid(self, form: PasswordResetForm) -> HttpResponse:
        response = super().form_valid(form)
        # The mail goes once the answer has: the same time to answer for every address.
        for send in form.unsent:
            response._resource_closers.append(partial(_send_logged, send))
        return response


def _send_logged(send: Callable[[], None]) -> None:
    try:
        send()
    except Exception:
        logger.warning("A password reset mail could not be sent.", exc_info=True)

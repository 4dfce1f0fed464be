"""Console views for accounts: sign-up, login, profile and API keys. Thin adapters over actions."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.tokens import default_token_generator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.decorators import method_decorator
from django.utils.http import urlsafe_base64_decode
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods
from django_ratelimit.decorators import ratelimit

from accounts import actions
from accounts.forms import ApiKeyForm, LoginForm, ProfileForm, SignupForm
from accounts.models import ApiKey, User
from auditlog.events import record

THROTTLED_MESSAGE = "Too many attempts. Wait a minute, then try again."


def ratelimited(request: HttpRequest, exception: Exception) -> HttpResponse:
    """RATELIMIT_VIEW: a console page hit too often."""
    return render(request, "accounts/throttled.html", {"message": THROTTLED_MESSAGE}, status=429)


def _login_account_key(group: str, request: HttpRequest) -> str:
    # Per account, whatever casing the attacker types.
    return (request.POST.get("username") or "").strip().lower()


@method_decorator(sensitive_post_parameters("password"), name="dispatch")
@method_decorator(
    ratelimit(key="ip", rate=lambda g, r: settings.LOGIN_RATE_PER_IP, method="POST", block=False), name="post"
)
@method_decorator(
    ratelimit(key=_login_account_key, rate=lambda g, r: settings.LOGIN_RATE_PER_ACCOUNT, method="POST", block=False),
    name="post",
)
class LoginView(auth_views.LoginView):
    """Login, throttled per IP and per account against credential stuffing.

    Over the limit, the form is not even checked, so a right password during the lock-out does
    not tell an attacker that it was right.
    """

    form_class = LoginForm
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if getattr(request, "limited", False):
            form = self.get_form()
            form.errors.clear()
            form.add_error(None, THROTTLED_MESSAGE)
            record("login.throttled", request=request, detail={"email_domain": _domain(request)})
            return self.render_to_response(self.get_context_data(form=form), status=429)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form: LoginForm) -> HttpResponse:
        response = super().form_valid(form)
        record("login.succeeded", actor=self.request.user, account=self.request.user, request=self.request)
        return response

    def form_invalid(self, form: LoginForm) -> HttpResponse:
        user = get_user_model().objects.filter(email__iexact=form.data.get("username", "").strip()).first()
        # Audited against the account it targeted, if any; the page says the same either way.
        record("login.failed", account=user, request=self.request)
        return super().form_invalid(form)


def _domain(request: HttpRequest) -> str:
    return (request.POST.get("username") or "").rpartition("@")[2][:100]


@sensitive_post_parameters("password")
@ratelimit(key="ip", rate=lambda g, r: settings.SIGNUP_RATE_PER_IP, method="POST", block=True)
@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("accounts:dashboard")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        activation = reverse("accounts:activate", kwargs={"uidb64": "UID", "token": "TOKEN"})
        actions.sign_up(
            form.cleaned_data["email"],
            form.cleaned_data["password"],
            name=form.cleaned_data["name"],
            request=request,
            activation_url=activation.replace("UID", "{uid}").replace("TOKEN", "{token}"),
        )
        return render(request, "accounts/signup_sent.html", {"email": form.cleaned_data["email"]})
    return render(request, "accounts/signup.html", {"form": form})


@never_cache
def activate(request: HttpRequest, uidb64: str, token: str) -> HttpResponse:
    try:
        user = User.objects.get(pk=int(urlsafe_base64_decode(uidb64)))
    except (ValueError, TypeError, OverflowError, User.DoesNotExist):
        user = None
    if user is None or not default_token_generator.check_token(user, token):
        return render(request, "accounts/activation_invalid.html", status=400)
    if not user.is_active:
        actions.activate_account(user, request=request)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    messages.success(request, "Your email is confirmed. Welcome to 3drake.")
    return redirect("accounts:dashboard")


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


@login_required
@require_http_methods(["GET", "POST"])
def profile(request: HttpRequest) -> HttpResponse:
    form = ProfileForm(request.POST or None, instance=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Profile saved.")
        return redirect("accounts:profile")
    return render(request, "accounts/profile.html", {"form": form})


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
    template_name = "accounts/password_reset.html"
    email_template_name = "accounts/email/password_reset.txt"
    subject_template_name = "accounts/email/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:password_reset_done")

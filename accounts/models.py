"""Accounts: one user is one customer account; API keys belong to it."""

from __future__ import annotations

import secrets
from datetime import timedelta
from functools import cache
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import connection, models
from django.db.models.functions import Lower, Upper
from django.utils import timezone
from django_otp.models import Device, ThrottlingMixin, TimestampMixin
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import keys
from billing.plans import default_plan
from billing.plans import unchanged as plan_unchanged
from drake import snapshots, sql
from senders import crypto
from senders.fields import EncryptedField

EMAIL_TAKEN = "An account with this email address exists already."


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def get_by_natural_key(self, username: str | None) -> User:
        # Emails are unique case-insensitively; log in with any casing.
        return self.get(email__iexact=username)

    def create_user(self, email: str, password: str | None = None, **fields: object) -> User:
        if not email:
            raise ValueError("An email address is required.")
        fields.setdefault("plan", default_plan())
        if fields.get("is_active", True):
            fields.setdefault("activated_at", timezone.now())
        user = self.model(email=self.normalize_email(email).strip(), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields: object) -> User:
        fields.setdefault("is_staff", True)
        fields.setdefault("is_superuser", True)
        return self.create_user(email, password, **fields)


class User(AbstractBaseUser, PermissionsMixin):
    """A customer account (or a staff member). Email is the login; name is optional."""

    email = models.EmailField("email address", max_length=254, unique=True)
    name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    # When the account was first activated; None while a sign-up waits for its link. Inactive
    # with it set is an account staff deactivated, which a password reset must not reactivate.
    activated_at = models.DateTimeField(null=True, blank=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)
    plan = models.ForeignKey("billing.Plan", on_delete=models.PROTECT, related_name="+")
    # Suspended by staff: the API answers 403 permission_denied, the console still works.
    suspended_at = models.DateTimeField(null=True, blank=True)
    suspension_reason = models.CharField(max_length=300, blank=True)
    # The privacy policy version the customer last acknowledged (a newer one shows a notice).
    policy_acknowledged_at = models.DateField(null=True, blank=True)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="user_email_ci_unique", violation_error_message=EMAIL_TAKEN),
            # What `email__iexact` compares, on PostgreSQL: UPPER folds "ı" into "I", lower()
            # keeps it, so lower() alone let alıce@ be a second account that alice's lookups
            # found too. With both, one typed address signs in to one account at most.
            models.UniqueConstraint(
                Upper("email"), name="user_email_upper_unique", violation_error_message=EMAIL_TAKEN
            ),
        ]
        permissions = [
            ("suspend_account", "Can suspend or unsuspend an account's API access"),
            ("reset_two_factor", "Can reset an account's two-factor authentication"),
        ]

    def __str__(self) -> str:
        return self.email

    def get_full_name(self) -> str:
        return self.name or self.email

    def get_short_name(self) -> str:
        return self.name or self.email


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def for_account(self, user: User) -> ApiKeyQuerySet:
        return self.filter(user=user)

    def active(self) -> ApiKeyQuerySet:
        return self.filter(revoked_at__isnull=True)


class ApiKeyManager(models.Manager["ApiKey"]):
    def get_queryset(self) -> ApiKeyQuerySet:
        return ApiKeyQuerySet(self.model, using=self._db)

    def for_account(self, user: User) -> ApiKeyQuerySet:
        return self.get_queryset().for_account(user)

    def authenticate(self, raw: str) -> ApiKey | None:
        """The active key for a raw key string, or None. One indexed query at most.

        A malformed key or a bad checksum is refused before any query; the secret is compared
        against the stored hash in constant time.
        """
        parsed = keys.parse(raw)
        if parsed is None:
            return None
        found = _key_with_account().rows([parsed.prefix])
        if not found:
            _snapshots.discard(parsed.prefix)
            return None
        key, user, plan, subscription = found[0]
        # What select_related("user", "user__plan", "user__subscription") would cache.
        ApiKey._meta.get_field("user").set_cached_value(key, user)
        User._meta.get_field("plan").set_cached_value(user, plan)
        User._meta.get_field("subscription").set_cached_value(user, subscription)
        if not keys.secret_matches(parsed.secret, key.secret_hash):
            return None  # Says nothing about the key itself: its snapshot, if any, stays.
        if key.revoked_at is None and user.is_active and user.suspended_at is None:
            _snapshots.put(key.prefix, key)
        else:
            _snapshots.discard(key.prefix)
        if key.revoked_at is not None:
            return None
        return key

    def authenticate_from_snapshot(self, raw: str) -> ApiKey | None:
        """The key this process last authenticated for `raw` from the database, with its
        account, plan and subscription, without a query; None if there is none (then use
        `authenticate`). Only a statement that also runs `unchanged(key)` may act on it: the
        snapshot may be stale (revoked, suspended, plan changed) and the condition says so.

        Only on PostgreSQL, whose one-statement accept is the statement that checks it. The
        secret is still compared against the stored hash in constant time.
        """
        if connection.vendor != "postgresql":
            return None
        parsed = keys.parse(raw)
        if parsed is None:
            return None
        key = _snapshots.get(parsed.prefix)
        if key is None or not keys.secret_matches(parsed.secret, key.secret_hash):
            return None
        return key

    def unchanged(self, key: ApiKey, connection: Any) -> list[tuple[str, list[object]]]:
        """Conditions (drake.sql) that `key` and its account are still as the snapshot read
        them: the key not revoked, the account active, not suspended, on the same plan, and
        the plan and subscription as read (billing.plans.unchanged)."""
        user = key.user
        return [
            sql.unchanged(key, ("user_id", "secret_hash", "revoked_at"), connection),
            sql.unchanged(user, ("is_active", "suspended_at", "plan_id"), connection),
            *plan_unchanged(user, connection),
        ]


# The keys this process authenticated from the database, by prefix (authenticate_from_snapshot).
_snapshots = snapshots.Snapshots(size=4096)


@cache
def _key_with_account() -> sql.Select:
    """A key by prefix, with its account, plan and subscription: every API request runs it."""
    plan_model, subscription_model = apps.get_model("billing", "Plan"), apps.get_model("billing", "Subscription")
    tables = {m: m._meta.db_table for m in (ApiKey, User, plan_model, subscription_model)}
    return sql.Select(
        sql.Columns(ApiKey, "k"),
        sql.Columns(User, "u"),
        sql.Columns(plan_model, "p"),
        sql.Columns(subscription_model, "s"),
        build=lambda k, u, p, s: (
            f"SELECT {k}, {u}, {p}, {s} FROM {tables[ApiKey]} k "  # noqa: S608 (our names)
            f"JOIN {tables[User]} u ON u.id = k.user_id JOIN {tables[plan_model]} p ON p.id = u.plan_id "
            f"LEFT JOIN {tables[subscription_model]} s ON s.user_id = u.id WHERE k.prefix = %s"
        ),
    )


class ApiKey(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    # Public part of the key: safe to show, unique, and the lookup index for authentication.
    prefix = models.CharField(max_length=keys.PREFIX_LENGTH, unique=True)
    # SHA-256 of the secret part; the secret itself is never stored.
    secret_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyManager()

    class Meta:
        ordering = ("-created_at",)
        verbose_name = "API key"
        permissions = [("revoke_apikey", "Can revoke an API key")]

    def __str__(self) -> str:
        return f"{self.display_prefix} ({self.name})"

    @property
    def display_prefix(self) -> str:
        return f"{keys.KEY_PREFIX}{self.prefix}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def touch(self) -> None:
        """Record use at most once per resolution window: a conditional UPDATE, no read."""
        now = timezone.now()
        window = timedelta(seconds=settings.API_KEY_LAST_USED_RESOLUTION_SECONDS)
        if self.last_used_at is not None and now - self.last_used_at < window:
            return
        stale = models.Q(last_used_at__isnull=True) | models.Q(last_used_at__lt=now - window)
        ApiKey.objects.filter(stale, pk=self.pk).update(last_used_at=now)
        self.last_used_at = now


class AuthenticatorDevice(TimestampMixin, ThrottlingMixin, Device):
    """A TOTP authenticator (two-factor sign-in) whose secret is encrypted at rest, as every
    stored secret is: django-otp's own TOTPDevice keeps it in clear (hex). Verification, its
    throttling and the otpauth:// URL are TOTPDevice's own code, borrowed; only where the key
    lives differs. `rotate_encryption_keys` re-encrypts it with the rest."""

    key_encrypted = EncryptedField()
    step = models.PositiveSmallIntegerField(default=30)
    t0 = models.BigIntegerField(default=0)
    digits = models.PositiveSmallIntegerField(choices=[(6, 6), (8, 8)], default=6)
    tolerance = models.PositiveSmallIntegerField(default=1)
    drift = models.SmallIntegerField(default=0)
    last_t = models.BigIntegerField(default=-1)

    verify_token = TOTPDevice.verify_token
    get_throttle_factor = TOTPDevice.get_throttle_factor
    config_url = TOTPDevice.config_url
    _read_str_from_settings = TOTPDevice._read_str_from_settings

    class Meta(Device.Meta):
        verbose_name = "authenticator app"

    @property
    def binding(self) -> str:
        return f"totp:{self.user_id}"  # A copied secret opens no other account.

    @property
    def bin_key(self) -> bytes:
        return crypto.decrypt(self.key_encrypted, binding=self.binding)

    def set_key(self, key: bytes) -> None:
        self.key_encrypted = crypto.encrypt(key, binding=self.binding)
        self._key_set = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.key_encrypted:
            self.set_key(secrets.token_bytes(20))  # 160 bits, as django-otp's default.
        if not self._state.adding and kwargs.get("update_fields") is None and not getattr(self, "_key_set", False):
            # django-otp saves the whole row after each code (verify_token, its throttling, the
            # last-used time): the key as loaded went back with it, so a sign-in during
            # rotate_encryption_keys put the old key's ciphertext back, and dropping that key
            # then locked the person out. The key is written only when it is set.
            kwargs["update_fields"] = [
                field.name
                for field in self._meta.concrete_fields
                if not field.primary_key and field.name != "key_encrypted"
            ]
        super().save(*args, **kwargs)

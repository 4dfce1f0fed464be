"""Plans are data: staff edit them in the admin; every new account starts on the default one."""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import Q


class SubjectPolicy(models.TextChoices):
    """How much of a subject the message log keeps (privacy policy section 2.4)."""

    LENGTH = "length", "Length only"
    SHA256 = "sha256", "Keyed SHA-256 hash"
    PREVIEW = "preview", "Redacted preview"


FREE_PLAN = {
    "name": "Free",
    "monthly_quota": 1000,
    "rate_per_minute": 60,
    "retention_days": 30,
    "subject_policy": "sha256",
    "price_cents": 0,
    "is_default": True,
}


class PlanManager(models.Manager["Plan"]):
    def default(self) -> Plan:
        """The plan new accounts start on; the free plan is recreated if it was ever lost."""
        try:
            return self.get(is_default=True)
        except self.model.DoesNotExist:
            return self.get_or_create(slug="free", defaults=FREE_PLAN)[0]


class Plan(models.Model):
    name = models.CharField(max_length=60)
    slug = models.SlugField(max_length=40, unique=True)
    monthly_quota = models.PositiveIntegerField(help_text="Messages accepted per billing period.")
    rate_per_minute = models.PositiveIntegerField(help_text="API requests per key per minute.")
    retention_days = models.PositiveIntegerField(default=30, help_text="Raw logs kept this long.")
    subject_policy = models.CharField(max_length=10, choices=SubjectPolicy.choices, default=SubjectPolicy.SHA256)
    stripe_price_id = models.CharField(max_length=100, blank=True)
    price_cents = models.PositiveIntegerField(default=0, help_text="Monthly price shown in the console.")
    is_default = models.BooleanField(default=False, help_text="New accounts start on this plan.")
    is_public = models.BooleanField(default=True, help_text="Offered on the billing page.")

    objects = PlanManager()

    class Meta:
        ordering = ("price_cents", "name")
        constraints = [
            # Exactly one plan can be the one new accounts start on.
            models.UniqueConstraint(fields=["is_default"], condition=Q(is_default=True), name="one_default_plan"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def price_display(self) -> str:
        return f"{self.price_cents / 100:.2f}"

    def as_api(self) -> dict[str, object]:
        return {
            "name": self.name,
            "monthly_quota": self.monthly_quota,
            "rate_per_minute": self.rate_per_minute,
            "subject_policy": self.subject_policy,
        }


class Subscription(models.Model):
    """The account's Stripe subscription, mirrored from Stripe (Stripe is the source of truth)."""

    user = models.OneToOneField("accounts.User", on_delete=models.SET_NULL, null=True, related_name="subscription")
    stripe_customer_id = models.CharField(max_length=100, unique=True)
    stripe_subscription_id = models.CharField(max_length=100, blank=True, db_index=True)
    plan = models.ForeignKey(Plan, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=30, blank=True, help_text="Stripe's status: active, past_due, canceled...")
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    # When payment started failing; the account keeps its plan for a grace period after it.
    past_due_since = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.stripe_customer_id} {self.status}"


# Stripe's zero-decimal currencies: an amount is in whole units, not hundredths.
ZERO_DECIMAL_CURRENCIES = frozenset(
    ["bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"]
)
# Stripe's three-decimal currencies: an amount is in thousandths (its last digit always 0).
THREE_DECIMAL_CURRENCIES = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])


def decimals_of(currency: str) -> int:
    """How many decimals an amount in `currency` has: Stripe counts in 10**-decimals units."""
    currency = currency.lower()
    if currency in ZERO_DECIMAL_CURRENCIES:
        return 0
    if currency in THREE_DECIMAL_CURRENCIES:
        return 3
    return 2


def in_units(amount: int, currency: str) -> Decimal:
    """An amount counted in the currency's smallest unit, as an exact decimal of whole units:
    1900 USD cents is 19.00, 1900 JPY is 1900, 19000 KWD fils is 19.000."""
    decimals = decimals_of(currency)
    return Decimal(amount).scaleb(-decimals).quantize(Decimal(1).scaleb(-decimals))


def money(amount: int, currency: str) -> str:
    """An amount as a person reads it: "1,234.56 USD", "1,500 JPY", "19.000 KWD"."""
    return f"{in_units(amount, currency):,} {currency.upper()}"


class Invoice(models.Model):
    """A billing record kept as accounting law requires, even after the account is deleted."""

    # SET_NULL: deleting an account detaches its invoices from personal data but keeps them.
    user = models.ForeignKey("accounts.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    stripe_invoice_id = models.CharField(max_length=100, unique=True)
    stripe_customer_id = models.CharField(max_length=100, blank=True)
    number = models.CharField(max_length=100, blank=True)
    amount_due = models.IntegerField(default=0, help_text="In the currency's smallest unit.")
    amount_paid = models.IntegerField(default=0)
    currency = models.CharField(max_length=3, default="usd")
    status = models.CharField(max_length=20, blank=True)
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    hosted_invoice_url = models.URLField(max_length=500, blank=True)
    created_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return self.number or self.stripe_invoice_id

    @property
    def amount_display(self) -> str:
        """The amount due as a person reads it: "19.00 USD" (Stripe counts in the currency's
        smallest unit: cents, but whole yen and thousandths of a dinar)."""
        return money(self.amount_due, self.currency)


class StripeEvent(models.Model):
    """Each webhook event id once: a replayed event hits the unique constraint and does nothing."""

    event_id = models.CharField(max_length=100, unique=True)
    type = models.CharField(max_length=100)
    received_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.event_id} {self.type}"


class UsageCounter(models.Model):
    """Messages accepted per account and period, locked row by row to enforce the quota exactly."""

    user = models.ForeignKey("accounts.User", on_delete=models.CASCADE, related_name="+")
    period_start = models.DateTimeField()
    accepted = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "period_start"], name="one_counter_per_period")]

    def __str__(self) -> str:
        return f"{self.user_id} {self.period_start:%Y-%m} {self.accepted}"

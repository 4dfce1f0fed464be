"""Plans are data: staff edit them in the admin; every new account starts on the default one."""

from __future__ import annotations

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

    def as_api(self) -> dict[str, object]:
        return {
            "name": self.name,
            "monthly_quota": self.monthly_quota,
            "rate_per_minute": self.rate_per_minute,
            "subject_policy": self.subject_policy,
        }

"""drake.sql: statements written once give what the ORM gives, field for field."""

from datetime import timedelta

from django.utils import timezone

from accounts.models import ApiKey
from billing.models import Subscription
from drake import sql
from drake.testing.models import fields_of
from relay.models import ApiRequest


def test_the_key_lookup_gives_what_select_related_gives(alice, alice_key):
    now = timezone.now().replace(microsecond=0)
    Subscription.objects.create(
        user=alice,
        stripe_customer_id="cus_test",
        status="active",
        current_period_start=now,
        current_period_end=now + timedelta(days=30),
    )
    found = ApiKey.objects.authenticate(alice_key)
    orm = ApiKey.objects.select_related("user", "user__plan", "user__subscription").get(pk=found.pk)
    assert fields_of(found) == fields_of(orm)
    assert fields_of(found.user) == fields_of(orm.user)
    assert fields_of(found.user.plan) == fields_of(orm.user.plan)
    assert fields_of(found.user.subscription) == fields_of(orm.user.subscription)


def test_an_account_without_a_subscription_has_none_cached(alice, alice_key, django_assert_num_queries):
    found = ApiKey.objects.authenticate(alice_key)
    with django_assert_num_queries(0):
        assert getattr(found.user, "subscription", None) is None
        assert found.user.plan.monthly_quota > 0


def test_an_insert_reads_back_as_written(alice):
    row = sql.insert(
        ApiRequest(user=alice, method="POST", endpoint="/v1/send", status=202, size_bucket="<1K", ip="127.0.0.1")
    )
    assert row.pk is not None
    assert fields_of(ApiRequest.objects.get(pk=row.pk)) == fields_of(row)

"""drake.sql: statements written once give what the ORM gives, field for field."""

from datetime import timedelta

from django.db import connection
from django.utils import timezone

from accounts.models import ApiKey, User
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


def _holds(condition: tuple[str, list]) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {condition[0]}", condition[1])  # noqa: S608 (our condition)
        return bool(cursor.fetchone()[0])


def test_unchanged_holds_until_a_field_changes(alice):
    fields = ("is_active", "suspended_at", "plan_id")
    assert _holds(sql.unchanged(alice, fields, connection))  # NULL suspended_at equals NULL.
    User.objects.filter(pk=alice.pk).update(suspended_at=timezone.now())
    assert not _holds(sql.unchanged(alice, fields, connection))
    alice.refresh_from_db()
    assert _holds(sql.unchanged(alice, fields, connection))
    assert _holds(sql.unchanged(alice, ("email",), connection))  # Other fields are not asked.


def test_unchanged_fails_for_a_deleted_row(alice, alice_key):
    key = ApiKey.objects.authenticate(alice_key)
    condition = sql.unchanged(key, ("revoked_at",), connection)
    ApiKey.objects.filter(pk=key.pk).delete()
    assert not _holds(condition)


def test_absent_holds_while_no_row_has_the_value(alice):
    assert _holds(sql.absent(Subscription, "user_id", alice.pk, connection))
    Subscription.objects.create(user=alice, stripe_customer_id="cus_absent")
    assert not _holds(sql.absent(Subscription, "user_id", alice.pk, connection))

"""drake.sql: statements written once give what the ORM gives, field for field."""

import warnings
import zoneinfo
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from django.db import connection
from django.db.models import GenericIPAddressField
from django.utils import timezone
from django.utils.translation import gettext_lazy

from accounts.models import ApiKey, User
from billing.models import Subscription
from drake import sql
from drake.testing.models import fields_of
from relay.models import ApiRequest, DeliveryAttempt, Message, OutboxContent, Status
from senders.fields import EncryptedField


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


def _outcome(convert, *args):  # noqa: ANN001, ANN202
    """What `convert(*args)` gives, comparable across the two paths: a psycopg Jsonb by its
    object and its dumps, anything else by type and value; an error by its type."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # A naive datetime's warning, on both paths.
        try:
            result = convert(*args)
        except Exception as exc:  # noqa: BLE001 (the type is what is compared)
            return ("raises", type(exc))
    if hasattr(result, "obj") and hasattr(result, "dumps"):
        return (type(result), result.obj, result.dumps)
    return (type(result), result)


WRITTEN_HERE = (Message, OutboxContent, ApiRequest, DeliveryAttempt)
VALUES = (
    *("", "x", "a@example.org", Status.QUEUED, gettext_lazy("lazy")),
    *(0, 7, -1, 2**40, True, False, None, 1.5),
    datetime(2026, 12, 1, 12, 30, tzinfo=UTC),
    datetime(2026, 12, 1, 12, 30, tzinfo=zoneinfo.ZoneInfo("Asia/Kolkata")),
    datetime(2026, 12, 1, 12, 30),  # noqa: DTZ001 (naive: Django warns and converts, on both paths)
    *({}, {"length": 3}, [], ["to@example.org"], {"nested": [1, {"a": None}]}),
)


@pytest.mark.parametrize("model", WRITTEN_HERE, ids=lambda m: m.__name__)
def test_every_value_goes_in_as_djangos_own_conversion_gives_it(model):
    _, _, preparers = sql._insert_sql(model, connection.vendor)
    fields = {f.attname: f for f in model._meta.concrete_fields}
    for attname, *_ in preparers:
        field = fields[attname]
        for value in VALUES:
            instance = SimpleNamespace(**{attname: value})
            fast = _outcome(lambda *args: sql._values(*args)[0], instance, [sql._preparer(field)], connection)
            django = _outcome(field.get_db_prep_save, value, connection)
            assert fast == django, (model.__name__, attname, value)


def test_the_send_paths_fields_all_take_the_direct_conversion():
    # Otherwise the comparison above would hold vacuously, through Django's path alone.
    for model in WRITTEN_HERE:
        for field in model._meta.concrete_fields:
            assert sql._adapters(field) or type(field) in (GenericIPAddressField, EncryptedField), field


def test_an_instances_values_are_what_django_would_write(alice):
    message = Message(
        user=alice,
        from_email="a@example.org",
        to=["b@example.org"],
        subject={"length": 3},
        message_id_header="<x@example.org>",
        expires_at=timezone.now(),
        status=Status.SENDING,
    )
    record = ApiRequest(user=alice, method="POST", endpoint="/v1/send", status=202, size_bucket="<1K", ip="::1")
    for obj in (message, record, OutboxContent(message_id=1, content_encrypted="token")):
        _, _, preparers = sql._insert_sql(type(obj), connection.vendor)
        fields = [f for f in type(obj)._meta.concrete_fields if f.attname in {p[0] for p in preparers}]
        django = [_outcome(f.get_db_prep_save, f.pre_save(obj, True), connection) for f in fields]
        fast = [_outcome(lambda v: v, v) for v in sql._values(obj, preparers, connection)]
        assert fast == django

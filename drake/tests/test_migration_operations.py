"""drake.migration_operations.CheapOnPostgres: what relay's index migration left on the test
database (built by the migrations), and that Django can write the operation back out."""

import importlib

import pytest
from django.db import connection, migrations
from django.db.migrations.writer import OperationWriter

MIGRATION = importlib.import_module("relay.migrations.0005_fewer_indexes")


def _indexes(table: str) -> set[str]:
    with connection.cursor() as cursor:
        return set(connection.introspection.get_constraints(cursor, table))  # Indexes and constraints.


@pytest.mark.django_db
def test_the_covered_indexes_are_gone_and_public_id_is_still_unique():
    message, request = _indexes("relay_message"), _indexes("relay_apirequest")
    assert "msg_public_id_unique" in message
    assert "msg_account_recent" in message and "apireq_account_recent" in request
    covered = {"relay_message_user_id_a9348899", "relay_apirequest_user_id_5ae99fb4"}
    if connection.vendor == "postgresql":
        covered |= {"relay_message_public_id_5b697f27_like", "relay_message_public_id_key"}
    assert not covered & (message | request)
    with connection.cursor() as cursor:
        unique = connection.introspection.get_constraints(cursor, "relay_message")["msg_public_id_unique"]
    assert unique["unique"] and unique["columns"] == ["public_id"]


def test_django_can_write_the_operation_back_out():
    (operation,) = MIGRATION.Migration.operations
    text, imports = OperationWriter(operation).serialize()
    namespace: dict = {"migrations": migrations}
    exec("\n".join(sorted(imports)) + "\nwritten = " + text.rstrip().rstrip(","), namespace)  # noqa: S102
    written = namespace["written"]
    assert type(written) is type(operation)
    assert (written.forward, written.backward) == (operation.forward, operation.backward)
    assert OperationWriter(written).serialize() == (text, imports)  # The whole of it, the SQL and the operations.

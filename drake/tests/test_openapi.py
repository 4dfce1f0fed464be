"""The OpenAPI schema is served, valid, and the live API keeps to it (schemathesis, in-process)."""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    ignored_auth,
    negative_data_rejection,
    positive_data_acceptance,
)

from drake.wsgi import application

schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", application)


def test_the_schema_is_served_and_lists_every_endpoint(client, db):
    body = client.get("/v1/openapi.json").json()
    assert body["openapi"].startswith("3.")
    for path in [
        "/v1/send",
        "/v1/messages",
        "/v1/messages/{message_id}",
        "/v1/senders",
        "/v1/senders/{sender_id}/verify",
        "/v1/account",
        "/v1/usage",
    ]:
        assert path in body["paths"], path
    assert body["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"


@pytest.fixture
def in_transaction():
    # As Django's test client does: the test's transaction must outlive each in-process request.
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def auth(alice, alice_key, settings, in_transaction):
    # A generous plan: the fuzzer must not run into the rate limit it is not testing.
    alice.plan.rate_per_minute = 100000
    alice.plan.save()
    settings.API_ACCOUNT_RATE_PER_MINUTE = 100000
    return {"Authorization": f"Bearer {alice_key}"}


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@pytest.mark.django_db
def test_the_api_keeps_to_its_schema(case, auth):
    response = case.call(headers=auth)
    # No 500 ever, and every answer (body and status) is one the schema documents. Not checked here:
    # ignored_auth (it would replay with our explicit header still set; every 401 case has its own
    # tests), "schema-valid data is accepted" (a well-formed but unknown sender id is a 404 by design),
    # and "schema-invalid data is refused" (the API takes a few inputs its schema forbids, e.g. an
    # empty starting_after, which means no cursor).
    case.validate_response(
        response,
        excluded_checks=[negative_data_rejection, positive_data_acceptance, ignored_auth],
    )
    assert response.status_code < 500


def test_an_address_with_an_internationalized_domain_keeps_to_the_schema(db, make_key, in_transaction):
    """Sign-up and createaccount take `zoe@bücher.de` as an account's email; /v1/account then
    answered with it, which the schema's "format": "email" does not allow."""
    from accounts.actions import create_account

    user = create_account("zoe@bücher.de", "correct horse battery staple", via="shell")
    case = schema["/v1/account"]["GET"].Case()
    response = case.call(headers={"Authorization": f"Bearer {make_key(user)}"})
    assert response.status_code == 200
    assert response.json()["email"] == "zoe@bücher.de"
    case.validate_response(response, excluded_checks=[negative_data_rejection, positive_data_acceptance, ignored_auth])

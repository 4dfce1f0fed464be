"""The OpenAPI 3 description of /v1/ (drf-spectacular): the contract of SPEC.md, machine-readable.

The API views build their JSON by hand; these serializers only describe it, so the schema and
the responses can be checked against each other (schemathesis does, in the tests).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "bearerFormat": "drk_<prefix>_<secret><checksum>"}


class ErrorBody(serializers.Serializer):
    type = serializers.CharField()
    message = serializers.CharField()
    field = serializers.CharField(required=False)


class ErrorEnvelope(serializers.Serializer):
    error = ErrorBody()


class Plan(serializers.Serializer):
    name = serializers.CharField()
    monthly_quota = serializers.IntegerField()
    rate_per_minute = serializers.IntegerField()
    subject_policy = serializers.ChoiceField(choices=["length", "sha256", "preview"])


class Account(serializers.Serializer):
    # Not "format": "email": an account's address may have an internationalized domain, kept as given.
    email = serializers.CharField(help_text="The account's email address.")
    name = serializers.CharField(allow_blank=True)
    plan = Plan()


class Usage(serializers.Serializer):
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    accepted = serializers.IntegerField()
    sent = serializers.IntegerField()
    failed = serializers.IntegerField()
    quota = serializers.IntegerField()
    remaining = serializers.IntegerField()


class LastError(serializers.Serializer):
    category = serializers.CharField()
    smtp_code = serializers.IntegerField(allow_null=True)
    message = serializers.CharField(allow_blank=True)


class MessageOut(serializers.Serializer):
    id = serializers.CharField()
    status = serializers.ChoiceField(choices=["queued", "sending", "sent", "failed"])
    sender = serializers.CharField(allow_null=True)
    to = serializers.ListField(child=serializers.CharField())
    subject = serializers.DictField()
    size_approx = serializers.IntegerField()
    attempts = serializers.IntegerField()
    last_error = LastError(allow_null=True)
    provider_message_id = serializers.CharField(allow_null=True)
    refused_recipients = serializers.DictField(
        allow_null=True,
        help_text='Recipients the server refused, as counts: {"count", "codes": {"550": n}} refused for good '
        '("expired": of them, those still deferred when the lifetime ended), and while the message waits '
        '"deferred": {"count", "codes"}, those to be tried again. null if none.',
    )
    created_at = serializers.DateTimeField()
    sent_at = serializers.DateTimeField(
        allow_null=True, help_text="When the server first accepted it; for some recipients if it deferred others."
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["from"] = serializers.EmailField()  # "from" is a keyword in Python.
        return fields


class MessagePage(serializers.Serializer):
    data = MessageOut(many=True)
    has_more = serializers.BooleanField()


class Attachment(serializers.Serializer):
    filename = serializers.CharField()
    content = serializers.CharField(help_text="base64")
    content_type = serializers.CharField(required=False)


class SendBody(serializers.Serializer):
    sender = serializers.CharField(help_text="snd_...")
    to = serializers.JSONField(help_text="An address or a list of addresses.")
    cc = serializers.ListField(child=serializers.CharField(), required=False)
    bcc = serializers.ListField(child=serializers.CharField(), required=False)
    reply_to = serializers.CharField(required=False)
    subject = serializers.CharField()
    text = serializers.CharField(required=False)
    html = serializers.CharField(required=False)
    headers = serializers.DictField(child=serializers.CharField(), required=False, help_text="At most 50.")
    attachments = Attachment(many=True, required=False)


Accepted = inline_serializer("Accepted", {"id": serializers.CharField(), "status": serializers.CharField()})
Verified = inline_serializer("Verified", {"verified": serializers.BooleanField()})

_WHY = {
    400: "invalid_request",
    401: "authentication_failed",
    402: "quota_exceeded",
    403: "permission_denied",
    404: "not_found",
    405: "invalid_request (method not allowed)",
    406: "invalid_request (not acceptable)",
    409: "idempotency_conflict",
    413: "payload_too_large",
    415: "invalid_request (unsupported media type)",
    422: "sender_verification_failed",
    429: "rate_limited",
    503: "service_unavailable",
}
COMMON = (400, 401, 403, 404, 405, 406, 413, 415, 429, 503)  # 503: the database or cache unreachable.


def errors(*extra: int) -> dict[int, OpenApiResponse]:
    """The error responses of an operation: those every /v1/ endpoint can give, plus `extra`."""
    return {code: OpenApiResponse(ErrorEnvelope, description=_WHY[code]) for code in sorted({*COMMON, *extra})}

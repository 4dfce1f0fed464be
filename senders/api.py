"""The senders endpoints of the REST API: parse, scope to the account, call an action, render."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from drake import openapi
from drake.api import ApiView as APIView
from drake.errors import InvalidRequest, SenderVerificationFailed
from senders import actions
from senders.models import Sender
from senders.serializers import SenderInputSerializer, SenderSerializer
from senders.validation import ConfigError


def _get(request: Request, sender_id: str) -> Sender:
    return get_object_or_404(Sender.objects.for_account(request.user), public_id=sender_id)


def _config_error(exc: ConfigError) -> InvalidRequest:
    return InvalidRequest(exc.message, field=exc.field)


def _verify_failed(category: str, smtp_code: int | None) -> str:
    """What the 422's message starts with: who said no. Only a reply is the provider's refusal;
    the guard refusing a host, or a lookup or connection that failed, is no answer of theirs."""
    if category == "host_not_allowed":
        return "Not connected"
    return "The provider refused" if smtp_code else "The connection failed"


SenderPage = inline_serializer(
    "SenderPage", {"data": SenderSerializer(many=True), "has_more": serializers.BooleanField()}
)


class SenderListView(APIView):
    @extend_schema(operation_id="senders_list", responses={200: SenderPage, **openapi.errors()})
    def get(self, request: Request) -> Response:
        senders = Sender.objects.for_account(request.user)
        return Response({"data": SenderSerializer(senders, many=True).data, "has_more": False})

    @extend_schema(request=SenderInputSerializer, responses={201: SenderSerializer, **openapi.errors()})
    def post(self, request: Request) -> Response:
        body = SenderInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            sender = actions.create_sender(request.user, body.validated_data, request=request)
        except ConfigError as exc:
            raise _config_error(exc) from exc
        return Response(SenderSerializer(sender).data, status=status.HTTP_201_CREATED)


class SenderDetailView(APIView):
    @extend_schema(responses={200: SenderSerializer, **openapi.errors()})
    def get(self, request: Request, sender_id: str) -> Response:
        return Response(SenderSerializer(_get(request, sender_id)).data)

    @extend_schema(request=SenderInputSerializer(partial=True), responses={200: SenderSerializer, **openapi.errors()})
    def patch(self, request: Request, sender_id: str) -> Response:
        sender = _get(request, sender_id)
        body = SenderInputSerializer(data=request.data, partial=True, context={"provider": sender.provider})
        body.is_valid(raise_exception=True)
        changes = {name: value for name, value in body.validated_data.items() if name != "provider"}
        try:
            sender = actions.update_sender(sender, changes, actor=request.user, request=request)
        except ConfigError as exc:
            raise _config_error(exc) from exc
        return Response(SenderSerializer(sender).data)

    @extend_schema(responses={204: None, **openapi.errors()})
    def delete(self, request: Request, sender_id: str) -> Response:
        actions.delete_sender(_get(request, sender_id), actor=request.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SenderVerifyView(APIView):
    @extend_schema(request=None, responses={200: openapi.Verified, **openapi.errors(422)})
    def post(self, request: Request, sender_id: str) -> Response:
        sender = _get(request, sender_id)
        failure = actions.verify_sender(sender, actor=request.user, request=request)
        if failure is not None:
            error = sender.last_verify_error
            raise SenderVerificationFailed(
                f"{_verify_failed(error['category'], error['smtp_code'])}: {failure.message}",
                extra={"category": error["category"], "smtp_code": error["smtp_code"], "hint": error["hint"]},
            )
        return Response({"verified": True})

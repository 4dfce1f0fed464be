"""The relay endpoints of the REST API."""

from __future__ import annotations

import logging

from django.db import DatabaseError, InterfaceError, OperationalError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.authentication import confirm, from_snapshot
from drake import openapi
from drake.api import ApiView as APIView
from drake.errors import InvalidRequest, ServiceUnavailable
from relay import actions, ratelimits, usage
from relay.models import Message, Status
from relay.serializers import message_as_api
from relay.validation import parse_send_request

MAX_PAGE = 100

logger = logging.getLogger(__name__)


class SendView(APIView):
    # The steady state reads nothing before its one statement (relay.actions.accept_from_snapshot).
    authenticates_from_snapshot = True

    @extend_schema(
        request=openapi.SendBody,
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False)],
        responses={202: openapi.Accepted, **openapi.errors(402, 409, 503)},
    )
    def post(self, request: Request) -> Response:
        send = parse_send_request(request.data)
        size = int(request.META.get("CONTENT_LENGTH") or 0)
        idempotency_key = request.headers.get("Idempotency-Key")
        if from_snapshot(request) and idempotency_key is None:
            record = usage.request_record(request, status.HTTP_202_ACCEPTED)
            message = actions.accept_from_snapshot(request.auth, send, size=size, usage_record=record)
            if message is not None:
                try:
                    request.auth.touch()
                except DatabaseError:
                    # Committed: a 503 ("nothing was queued") would have the client send it twice.
                    logger.warning("Could not record the key's last use after an accepted send", exc_info=True)
                return self.accepted(request, message, replayed=False)
        self.confirm(request)
        message, replayed = actions.accept_message(
            request.user,
            send,
            api_key=request.auth,
            size=size,
            idempotency_key=idempotency_key,
            usage_record=usage.request_record(request, status.HTTP_202_ACCEPTED),
        )
        return self.accepted(request, message, replayed=replayed)

    def accepted(self, request: Request, message: Message, *, replayed: bool) -> Response:
        if not replayed:
            usage.recorded(request)
        headers = {"Idempotent-Replayed": "true"} if replayed else {}
        return Response({"id": message.public_id, "status": "queued"}, status=status.HTTP_202_ACCEPTED, headers=headers)

    def confirm(self, request: Request) -> None:
        """A request authenticated from a snapshot, now from the database (401, 403), and held
        to its plan's rate as read now (429). Nothing for any other request."""
        if from_snapshot(request):
            confirm(request, self)
            ratelimits.recheck(request)

    def handle_exception(self, exc: Exception) -> Response:
        # Any answer but a 202 to a request authenticated from a snapshot is given only once
        # the database has authenticated it: a revoked key gets its 401 before a 400 or 429.
        try:
            self.confirm(self.request)
        except Exception as refused:  # noqa: BLE001 (rendered below, as any error of this view)
            exc = refused
        if isinstance(exc, OperationalError | InterfaceError):
            # The database cannot be reached (the send's own statement or the key lookup).
            exc = ServiceUnavailable()
        return super().handle_exception(exc)


class UsageView(APIView):
    @extend_schema(responses={200: openapi.Usage, **openapi.errors()})
    def get(self, request: Request) -> Response:
        return Response(usage.usage_summary(request.user))


class MessageListView(APIView):
    @extend_schema(
        operation_id="messages_list",
        parameters=[
            OpenApiParameter("status", str, enum=list(Status.values), required=False),
            OpenApiParameter(
                "limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 20}, required=False
            ),
            OpenApiParameter("starting_after", {"type": "string", "pattern": "^msg_[0-9a-f]{24}$"}, required=False),
        ],
        responses={200: openapi.MessagePage, **openapi.errors()},
    )
    def get(self, request: Request) -> Response:
        messages = Message.objects.for_account(request.user).select_related("sender")
        wanted = request.query_params.get("status")
        if wanted:
            if wanted not in Status.values:
                raise InvalidRequest(f"status is one of {', '.join(Status.values)}.", field="status")
            messages = messages.filter(status=wanted)
        try:
            limit = int(request.query_params.get("limit", 20))
        except ValueError as exc:
            raise InvalidRequest("limit is a number from 1 to 100.", field="limit") from exc
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequest("limit is a number from 1 to 100.", field="limit")
        after = request.query_params.get("starting_after")
        if after:
            cursor = (
                Message.objects.for_account(request.user).filter(public_id=after).values("created_at", "id").first()
            )
            if cursor is None:
                raise InvalidRequest("starting_after is not one of your message ids.", field="starting_after")
            messages = messages.filter(created_at__lte=cursor["created_at"]).exclude(
                created_at=cursor["created_at"], id__gte=cursor["id"]
            )
        page = list(messages.order_by("-created_at", "-id")[: limit + 1])
        return Response({"data": [message_as_api(m) for m in page[:limit]], "has_more": len(page) > limit})


class MessageDetailView(APIView):
    @extend_schema(responses={200: openapi.MessageOut, **openapi.errors()})
    def get(self, request: Request, message_id: str) -> Response:
        message = get_object_or_404(
            Message.objects.for_account(request.user).select_related("sender"), public_id=message_id
        )
        return Response(message_as_api(message))

"""The account endpoints of the REST API."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from drake import openapi
from drake.api import ApiView as APIView


class AccountView(APIView):
    @extend_schema(responses={200: openapi.Account, **openapi.errors()})
    def get(self, request: Request) -> Response:
        user = request.user
        return Response({"email": user.email, "name": user.name, "plan": user.plan.as_api()})

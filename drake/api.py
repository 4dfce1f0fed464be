"""The base of every /v1/ view: rate limits after authentication, their headers on every response but a 401."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class ApiView(APIView):
    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        from relay import ratelimits

        ratelimits.check(request)

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        from relay import ratelimits

        response = super().finalize_response(request, response, *args, **kwargs)
        if response.status_code == 401:
            # No key's budget to show: also when the key was counted from a snapshot
            # (POST /v1/send) before the database refused it.
            return response
        for name, value in ratelimits.headers(getattr(request._request, "drake_ratelimit", None)).items():
            response.headers.setdefault(name, value)
        return response

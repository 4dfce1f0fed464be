"""A test-only URLconf: the real API plus a few views that fail on purpose (under /v1/, and one console page)."""

from django.urls import include, path
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView


class Echo(APIView):
    authentication_classes = ()
    permission_classes = (AllowAny,)

    def post(self, request):
        return Response({"received": request.data})


class Boom(APIView):
    authentication_classes = ()
    permission_classes = (AllowAny,)

    def get(self, request):
        raise RuntimeError("internal detail: password=hunter2 at /srv/secret/path.py")


def console_boom(request):
    raise RuntimeError("internal detail: password=hunter2 at /srv/secret/path.py")


urlpatterns = [
    path("v1/_test/echo", Echo.as_view()),
    path("v1/_test/boom", Boom.as_view()),
    path("_test/boom/", console_boom),
    path("", include("drake.urls")),
]

handler400 = "drake.views.bad_request"
handler404 = "drake.views.page_not_found"
handler500 = "drake.views.server_error"

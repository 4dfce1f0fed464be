from django.urls import include, path
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView


class BareEcho(APIView):
    """The reference: a DRF POST that parses JSON and answers, with no auth and no database."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    def post(self, request):
        return Response({"ok": True, "fields": len(request.data)}, status=202)


urlpatterns = [path("bench/bare", BareEcho.as_view()), path("", include("drake.urls"))]

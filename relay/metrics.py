"""Prometheus metrics at /metrics, computed from the database at scrape time.

Read from the shared database rather than counted in each process, so every web and worker
process is covered without a multiprocess setup, and a restart loses nothing. Guarded by
METRICS_TOKEN (a bearer token); without one configured the endpoint does not exist.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Min
from django.db.models.fields.json import KeyTextTransform
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric

from relay.models import ApiRequest, Message, Status
from relay.usage import METHODS

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class DrakeCollector:
    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        hour_ago = now - timedelta(hours=1)

        requests = GaugeMetricFamily(
            "drake_api_requests_last_hour", "API requests in the last hour", labels=["endpoint", "status"]
        )
        labelled: dict[tuple[str, str], int] = {}
        for row in (
            ApiRequest.objects.filter(created_at__gte=hour_ago)
            .values("method", "endpoint", "status")
            .annotate(n=Count("id"))
        ):
            # Bounded labels only: a method a client made up (rows from before usage.METHODS) is OTHER.
            method = row["method"] if row["method"] in METHODS else "OTHER"
            labels = (f"{method} {row['endpoint']}", str(row["status"]))
            labelled[labels] = labelled.get(labels, 0) + row["n"]
        for labels, n in labelled.items():
            requests.add_metric(list(labels), n)
        yield requests

        messages = GaugeMetricFamily("drake_messages", "Messages in the retained log by status", labels=["status"])
        counts = dict(Message.objects.values_list("status").annotate(n=Count("id")))
        for status in Status.values:
            messages.add_metric([status], counts.get(status, 0))
        yield messages

        failures = GaugeMetricFamily(
            "drake_message_failures", "Failed messages in the retained log by category", labels=["category"]
        )
        rows = Message.objects.filter(status=Status.FAILED).annotate(
            category=KeyTextTransform("category", "last_error")
        )
        for row in rows.values("category").annotate(n=Count("id")):
            failures.add_metric([row["category"] or "unknown"], row["n"])
        yield failures

        waiting = Message.objects.filter(status__in=[Status.QUEUED, Status.SENDING])
        yield GaugeMetricFamily("drake_queue_depth", "Messages waiting in the outbox", value=waiting.count())
        oldest = waiting.aggregate(oldest=Min("created_at"))["oldest"]
        age = (now - oldest).total_seconds() if oldest else 0.0
        yield GaugeMetricFamily("drake_outbox_oldest_age_seconds", "Age of the oldest waiting message", value=age)

        buckets = [0] * len(LATENCY_BUCKETS)
        total, count = 0.0, 0
        for created, sent in (
            Message.objects.filter(status=Status.SENT, sent_at__gte=hour_ago)
            .values_list("created_at", "sent_at")
            .iterator()
        ):
            seconds = (sent - created).total_seconds()
            total += seconds
            count += 1
            for index, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    buckets[index] += 1
        latency = HistogramMetricFamily(
            "drake_delivery_latency_seconds_last_hour", "From 202 to the provider's 250, messages sent in the last hour"
        )
        latency.add_metric(
            [],
            [(str(b), n) for b, n in zip(LATENCY_BUCKETS, buckets, strict=True)] + [("+Inf", count)],
            sum_value=total,
        )
        yield latency


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    token = settings.METRICS_TOKEN
    if not token:
        raise Http404("Metrics are not enabled.")
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), token.encode()):
        return HttpResponse("Authorization: Bearer <METRICS_TOKEN> required.\n", status=401, content_type="text/plain")
    registry = CollectorRegistry()
    registry.register(DrakeCollector())
    return HttpResponse(generate_latest(registry), content_type="text/plain; version=0.0.4; charset=utf-8")

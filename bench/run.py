"""Relay benchmarks, side by side in one run. Run by hand, never in CI:

    .venv/bin/python -m bench.run            # everything
    .venv/bin/python -m bench.run accept     # one part: accept, delivery, latency, rtt, profile

Needs PostgreSQL and Redis on loopback (as on the python-svc machines) and `wrk` on PATH.
Starts its own gunicorn, SMTP sink and Celery workers; writes bench/results.json.
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import re
import signal
import smtplib
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from drake.testing.processes import stop, wait_for_http

ROOT = Path(__file__).resolve().parent.parent
TMP = Path(tempfile.mkdtemp(prefix="drake-bench-"))
CA_FILE = TMP / "ca.pem"
SINK_PORT = 2599
WEB_PORT = 8799
ENV = {
    "DJANGO_SETTINGS_MODULE": "bench.settings",
    "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/drake_bench"),
    "CELERY_BROKER_URL": os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/13"),
    "CACHE_URL": os.environ.get("BENCH_CACHE_URL", "redis://127.0.0.1:6379/12"),
    "SMTP_ALLOW_PRIVATE_HOSTS": "true",
    "SMTP_ALLOWED_PORTS": "*",
    "SMTP_CA_FILE": str(CA_FILE),
    "LOG_LEVEL": "WARNING",
    # Production mode: DEBUG off (it records every query), behind no TLS proxy on loopback.
    "DEBUG": "false",
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "SECURE_SSL_REDIRECT": "false",
    # The plan's per-key rate is lifted in make_account; lift the per-account ceiling too.
    "API_ACCOUNT_RATE_PER_MINUTE": "100000000",
}
_dev = ROOT / "var" / "dev.env"
if _dev.exists():
    # Reuse the generated development keys; production mode has no defaults for them.
    for line in _dev.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            name, _, value = line.partition("=")
            ENV.setdefault(name, value)
os.environ.update(ENV)
RESULTS: dict[str, object] = {}


def sh(*args: str, **kwargs: object) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, check=True, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]


def start(args: list[str], name: str) -> subprocess.Popen:
    log = open(TMP / f"{name}.log", "w")  # noqa: SIM115
    return subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


class Sink:
    def __init__(self, delay: float = 0.0, *, pipelining: bool | None = None) -> None:
        if pipelining is None:  # As Gmail, Outlook and Postfix do, unless BENCH_SINK_PIPELINING=0.
            pipelining = os.environ.get("BENCH_SINK_PIPELINING", "1") != "0"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.sink",
                "--port",
                str(SINK_PORT),
                "--delay",
                str(delay),
                "--ca-file",
                str(CA_FILE),
                *([] if pipelining else ["--no-pipelining"]),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.proc.stdout.readline().strip() == "ready"
        # A new sink has a new CA: forget any TLS context built from the previous one.
        try:
            from senders.smtp import _tls_context

            _tls_context.cache_clear()
        except Exception:  # noqa: S110  (Django not set up yet: nothing cached either)
            pass

    def close(self) -> str:
        os.killpg(self.proc.pid, signal.SIGTERM)
        out = self.proc.stdout.read().strip()
        self.proc.wait()
        return out


def setup_django() -> None:
    import django

    django.setup()


def prepare_database() -> None:
    db = ENV["DATABASE_URL"].rsplit("/", 1)[1]
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"],
        capture_output=True,
    )
    sh("psql", "-h", "127.0.0.1", "-U", "postgres", "-c", f"CREATE DATABASE {db}")
    sh(sys.executable, "manage.py", "migrate", "--noinput")
    import redis

    for url in (ENV["CELERY_BROKER_URL"], ENV["CACHE_URL"]):
        redis.Redis.from_url(url).flushdb()


def make_account(senders: int = 1) -> tuple[str, list[str]]:
    from accounts.actions import create_account, create_api_key
    from accounts.models import User
    from billing.models import Plan

    Plan.objects.filter(is_default=True).update(monthly_quota=10_000_000, rate_per_minute=10_000_000)
    user = User.objects.filter(email="bench@example.org").first() or create_account(
        "bench@example.org", "bench passphrase 1", via="shell"
    )
    _, raw = create_api_key(user, "bench", via="shell")
    from senders.actions import create_sender

    ids = []
    for i in range(senders):
        sender = create_sender(
            user,
            {
                "provider": "smtp",
                "from_email": f"bench{i}@example.org",
                "host": "127.0.0.1",
                "port": SINK_PORT,
                "security": "starttls",
                "username": "bench@example.org",
                "password": "bench-password",
            },
            via="shell",
        )
        ids.append(sender.public_id)
    # Throughput, not pacing, is measured here: lift the custom-SMTP pace (600/min, 100,000/day).
    from senders.models import Sender

    Sender.objects.filter(user=user).update(max_per_minute=1_000_000, max_per_day=100_000_000)
    return raw, ids


def wrk(url: str, body: str, key: str | None, seconds: int = 10, connections: int = 32) -> dict[str, float]:
    script = TMP / "post.lua"
    headers = 'wrk.headers["Content-Type"] = "application/json"\n'
    if key:
        headers += f'wrk.headers["Authorization"] = "Bearer {key}"\n'
    script.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n{headers}')
    out = sh("wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50_ms": ms("50"), "p99_ms": ms("99"), "non_2xx": int(non2xx.group(1)) if non2xx else 0}


def send_body(sender: str, i: int = 0) -> str:
    return json.dumps({"sender": sender, "to": f"r{i}@example.com", "subject": "Benchmark", "text": "Hello " * 40})


def gunicorn(workers: str, *, knobs: bool = True) -> list[str]:
    """The web server's command line: the project's gunicorn.conf.py (gunicorn reads it from the
    working directory) with `workers` sync workers, no access log, and no recycling of workers:
    its max_requests (10,000) restarted workers in the middle of the send run once the bare
    run before it had served ~40,000 requests, which charged the send side with booting Django
    again and hid the restarted workers' CPU (bench/README.md, seventh session)."""
    extra = os.environ.get("BENCH_GUNICORN_ARGS", "").split() if knobs else []
    return [
        f"{ROOT}/.venv/bin/gunicorn", "drake.wsgi:application", "-b", f"127.0.0.1:{WEB_PORT}", "-w", workers,
        "--access-logfile", "/dev/null", "--max-requests", "0", *extra,
    ]  # fmt: skip


def bench_accept(key: str, sender: str) -> None:
    web = start(gunicorn(os.environ.get("BENCH_WEB_WORKERS", "4")), "gunicorn")
    try:
        wait_for_http(f"http://127.0.0.1:{WEB_PORT}/healthz")
        base = f"http://127.0.0.1:{WEB_PORT}"
        wrk(f"{base}/bench/bare", "{}", None, seconds=3)  # warm-up
        bare, bare_cpu = _wrk_with_cpu(f"{base}/bench/bare", send_body(sender), None)
        wrk(f"{base}/v1/send", send_body(sender), key, seconds=3)
        send, send_cpu = _wrk_with_cpu(f"{base}/v1/send", send_body(sender), key)
    finally:
        stop(web)
    RESULTS["accept"] = {
        "bare_drf": {**bare, "cpu_ms_per_request": bare_cpu},
        "send": {**send, "cpu_ms_per_request": send_cpu},
        "ratio": round(send["rps"] / bare["rps"], 2),
    }
    print(
        f"accept: bare {bare['rps']:.0f} req/s, send {send['rps']:.0f} req/s (x{send['rps'] / bare['rps']:.2f}), "
        f"send p50 {send['p50_ms']} ms p99 {send['p99_ms']} ms; CPU ms per request: bare {bare_cpu}, send {send_cpu}"
    )


def _wrk_with_cpu(url: str, body: str, key: str | None, seconds: int = 10) -> tuple[dict[str, float], dict[str, float]]:
    """`wrk` and the machine's CPU per request by process kind over the run (wrk's own from the
    children's times: it has exited when the second snapshot is taken)."""
    before, children = cpu_by_kind(), os.times()
    result = wrk(url, body, key, seconds=seconds)
    after, done = cpu_by_kind(), os.times()
    requests = max(1, round(result["rps"] * seconds))
    cpu = cpu_per_message(before, after, requests)
    wrk_cpu = (done.children_user + done.children_system) - (children.children_user + children.children_system)
    cpu["wrk"] = round(wrk_cpu * 1000 / requests, 2)
    return result, cpu


def clear_outbox() -> None:
    import redis

    from relay.models import Message

    Message.objects.all().delete()
    # The cache too: a sender's prompt mark left by the previous part (whose task went with the
    # broker's queue) would hold this part's messages back until it expires.
    for url in (ENV["CELERY_BROKER_URL"], ENV["CACHE_URL"]):
        redis.Redis.from_url(url).flushdb()


def prefill(senders: list[str], count: int) -> None:
    from accounts.models import User
    from relay.actions import accept_message
    from relay.validation import parse_send_request

    user = User.objects.get(email="bench@example.org")
    for i in range(count):
        request = parse_send_request(json.loads(send_body(senders[i % len(senders)], i)))
        accept_message(user, request, size=400)


def prefill_bulk(senders: list[str], count: int, chunk: int = 2000) -> None:
    """A pre-filled outbox of `count` messages without the API: rows and encrypted content
    written in bulk, tasks published as accept publishes them. For runs too long to prefill one accept
    at a time (worker memory over 100,000 messages)."""
    from datetime import timedelta

    from django.db import transaction
    from django.utils import timezone

    from accounts.models import User
    from relay import outbox
    from relay.actions import _message_id, content_binding
    from relay.models import Message, OutboxContent
    from relay.validation import parse_send_request
    from senders import crypto
    from senders.models import Sender

    user = User.objects.get(email="bench@example.org")
    by_id = {s.public_id: s for s in Sender.objects.filter(public_id__in=senders)}
    for first in range(0, count, chunk):
        now = timezone.now()
        rows, contents = [], []
        for i in range(first, min(count, first + chunk)):
            sender = by_id[senders[i % len(senders)]]
            request = parse_send_request(json.loads(send_body(sender.public_id, i)))
            message = Message(
                user=user, sender=sender, from_email=sender.from_email, to=list(request.to),
                subject={"length": len(request.subject)}, size_approx=1024,
                message_id_header=_message_id(sender.from_email), created_at=now, next_attempt_at=now,
                enqueued_at=now, expires_at=now + timedelta(hours=24),
            )  # fmt: skip
            token = crypto.encrypt(json.dumps(request.content()).encode(), binding=content_binding(message.public_id))
            rows.append(message)
            contents.append((message, token))
        with transaction.atomic():
            Message.objects.bulk_create(rows)
            OutboxContent.objects.bulk_create(OutboxContent(message=m, content_encrypted=t) for m, t in contents)
        for message in rows:
            outbox.prompt(message.sender_id, message.public_id)  # As accept does: one per sender.
        print(f"prefill: {min(count, first + chunk)} of {count}", flush=True)


class Workers:
    """One worker process per core (each a thread pool): Python threads share one core."""

    def __init__(self, concurrency: int, name: str, processes: int = os.cpu_count() or 1) -> None:
        self.procs = [worker(concurrency, f"{name}-{i}") for i in range(processes)]

    def stop(self) -> None:
        for proc in self.procs:
            stop(proc)


def worker(concurrency: int, name: str) -> subprocess.Popen:
    # --beat: deferred (paced, retried) messages are re-published by the outbox sweep.
    return start(
        [sys.executable, "-m", "celery", "-A", "drake", "worker", "--pool", "threads", "--concurrency", str(concurrency),
         "--loglevel", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat", "-Q", "celery",
         "--beat", "--schedule", str(TMP / f"{name}.beat")],
        name,
    )  # fmt: skip


def wait_all_sent(count: int, timeout: float = 600) -> float:
    from relay.models import Message

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        done = Message.objects.filter(status__in=["sent", "failed"]).count()
        if done >= count:
            break
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    failed = Message.objects.filter(status="failed").count()
    if failed:
        raise RuntimeError(f"{failed} message(s) failed")
    return elapsed


def drain(count: int, workers: Workers, sink: Sink) -> dict[str, float]:
    """Wait until `count` pre-filled messages are sent. msg/s over the whole run (the workers'
    start included) and in the steady state: from when a tenth is sent (workers up, pools
    warm) to the end, with the workers' and the sink's CPU seconds over that part."""
    from relay.models import Message

    started = time.monotonic()
    warm = count // 10
    while Message.objects.filter(status="sent").count() < warm:
        time.sleep(0.02)
    warm_at, warm_cpu = time.monotonic(), sum(cpu_seconds(p.pid) for p in workers.procs)
    warm_sink = cpu_seconds(sink.proc.pid)
    wait_all_sent(count)
    done = time.monotonic()
    return {
        "msg_s": count / (done - started),
        "steady_msg_s": (count - warm) / (done - warm_at),
        "warm": warm,
        "worker_cpu": sum(cpu_seconds(p.pid) for p in workers.procs) - warm_cpu,
        "sink_cpu": cpu_seconds(sink.proc.pid) - warm_sink,
    }


def bench_delivery(senders: list[str], count: int = 2000) -> None:
    clear_outbox()
    prefill(senders[:1], count)
    sink = Sink()
    try:
        workers = Workers(int(os.environ.get("BENCH_THREADS", "8")), "worker-delivery")
        run = drain(count, workers, sink)
        workers.stop()
        ours, steady, warm = run["msg_s"], run["steady_msg_s"], run["warm"]
        worker_cpu, sink_cpu = run["worker_cpu"], run["sink_cpu"]
        # The peer figure: raw smtplib over one reused STARTTLS connection, same sink, same bytes.
        context = ssl.create_default_context(cafile=str(CA_FILE))
        body = b"From: a@example.org\r\nTo: b@example.com\r\nSubject: x\r\n\r\n" + b"Hello " * 40 + b"\r\n"
        raw_started = time.monotonic()
        with smtplib.SMTP("127.0.0.1", SINK_PORT, local_hostname="localhost") as client:
            client.starttls(context=context)
            client.login("bench@example.org", "bench-password")
            for i in range(count):
                client.sendmail("a@example.org", [f"r{i}@example.com"], body)
        raw = count / (time.monotonic() - raw_started)
        post_office = [_post_office(count, processes) for processes in (1, 2)]
    finally:
        sink_report = sink.close()
    RESULTS["delivery"] = {
        "post_office": post_office,
        "messages": count,
        "ours_msg_s": round(ours, 1),
        "raw_smtplib_msg_s": round(raw, 1),
        "ratio": round(ours / raw, 2),
        "steady_msg_s": round(steady, 1),
        "steady_ratio": round(steady / raw, 2),
        "sink": sink_report,
        # Where the two cores went in the steady state, per message: the workers and the sink.
        "worker_cpu_ms_per_message": round(worker_cpu * 1000 / (count - warm), 2),
        "sink_cpu_ms_per_message": round(sink_cpu * 1000 / (count - warm), 2),
    }
    print(
        f"delivery: ours {ours:.0f} msg/s (workers' start included), {steady:.0f} msg/s steady; raw smtplib "
        f"{raw:.0f} msg/s (x{ours / raw:.2f}, steady x{steady / raw:.2f}); sink: {sink_report}; steady CPU per "
        f"message: workers {worker_cpu * 1000 / (count - warm):.2f} ms, sink {sink_cpu * 1000 / (count - warm):.2f} ms"
    )


def _post_office(count: int, processes: int) -> dict[str, float] | None:
    """The peer: django-post-office queueing and sending the same messages (bench/postoffice.py)."""
    try:
        import post_office  # noqa: F401
    except ImportError:
        print("delivery: django-post-office not installed (pip install -r bench/requirements.txt); peer skipped")
        return None
    env = {**os.environ, "SSL_CERT_FILE": str(CA_FILE), "BENCH_SINK_PORT": str(SINK_PORT)}
    out = sh(sys.executable, "-m", "bench.postoffice", str(count), str(processes), env=env).stdout
    result = json.loads(out.strip().splitlines()[-1])
    print(f"delivery: django-post-office, {processes} process(es): {result}")
    return result


def _percentiles(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {
        "p50_ms": round(statistics.median(values), 1),
        "p99_ms": round(values[max(0, int(len(values) * 0.99) - 1)], 1),
        "max_ms": round(values[-1], 1),
    }


def bench_latency(key: str, sender: str, count: int = 200, rate: float = 20.0) -> None:
    from relay.models import Message

    clear_outbox()
    sink = Sink()
    web = start(gunicorn("2", knobs=False), "gunicorn-latency")
    workers = Workers(8, "worker-latency")
    answered: dict[str, float] = {}  # message id -> when the client had its 202 (same clock as sent_at)
    try:
        wait_for_http(f"http://127.0.0.1:{WEB_PORT}/healthz")
        time.sleep(2)
        for i in range(count):
            request = urllib.request.Request(  # noqa: S310
                f"http://127.0.0.1:{WEB_PORT}/v1/send",
                data=send_body(sender, i).encode(),
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            )
            body = json.loads(urllib.request.urlopen(request).read())  # noqa: S310
            answered[body["id"]] = time.time()
            time.sleep(1 / rate)
        wait_all_sent(count)
    finally:
        workers.stop()
        stop(web)
        sink.close()
    sent = list(Message.objects.filter(status="sent").values_list("public_id", "created_at", "sent_at"))
    from_202 = _percentiles([(done.timestamp() - answered[pid]) * 1000 for pid, _, done in sent])
    from_request = _percentiles([(done - created).total_seconds() * 1000 for _, created, done in sent])
    RESULTS["latency"] = {"messages": count, "rate_per_s": rate, "from_202": from_202, "from_request": from_request}
    print(f"latency 202 -> 250: {from_202}; request start -> 250: {from_request}")


def bench_rtt(senders: list[str], count: int = 2000) -> None:
    rows = []
    for concurrency in (4, 16, 32):
        clear_outbox()
        prefill(senders, count)
        sink = Sink(delay=0.02)
        workers = Workers(concurrency, f"worker-rtt-{concurrency}")
        try:
            run = drain(count, workers, sink)
        finally:
            workers.stop()
            report = sink.close()
        rows.append(
            {
                "threads_per_process": concurrency,
                "processes": os.cpu_count(),
                "msg_s": round(run["msg_s"], 1),
                "steady_msg_s": round(run["steady_msg_s"], 1),
                "sink": report,
            }
        )
        print(
            f"rtt 20 ms, {len(senders)} senders, {os.cpu_count()}x{concurrency} threads: {run['msg_s']:.0f} msg/s, "
            f"{run['steady_msg_s']:.0f} steady ({report})"
        )
    RESULTS["rtt_20ms"] = rows


def bench_link(senders: list[str], count: int = 40, delay: float = 0.010) -> None:
    """One sender's messages, one after another in one thread over a pooled connection, through
    a link with a 20 ms round trip (drake.testing.proxy: 10 ms each way, commands written
    together cross it together), with the sink offering PIPELINING and without: how long a
    message takes on a real network, where the time is round trips, not CPU."""
    from drake.testing.proxy import Link
    from relay import delivery, transport
    from relay.models import Message
    from senders.models import Sender

    rows = {}
    try:
        for pipelining in (True, False):
            clear_outbox()
            prefill(senders[:1], count + 1)
            ids = list(Message.objects.order_by("id").values_list("public_id", flat=True))
            sink = Sink(pipelining=pipelining)
            link = Link(SINK_PORT, delay=delay).start()
            Sender.objects.filter(public_id=senders[0]).update(port=link.port)
            try:
                delivery.deliver(ids[0])  # Opens the connection (TLS and login cross the link too).
                times = []
                for public_id in ids[1:]:
                    started = time.monotonic()
                    delivery.deliver(public_id)
                    times.append((time.monotonic() - started) * 1000)
            finally:
                transport.pool.close_all()
                link.stop()
                sink.close()
            assert Message.objects.filter(status="sent").count() == count + 1
            rows["pipelining" if pipelining else "one_by_one"] = {
                "ms_per_message": _percentiles(times), "client_writes": link.client_writes
            }  # fmt: skip
    finally:
        Sender.objects.filter(public_id=senders[0]).update(port=SINK_PORT)
    RESULTS["link_20ms"] = {"messages": count, "round_trip_ms": delay * 2000, **rows}
    print(f"link, 20 ms round trip, one thread: {rows}")


def bench_pipeline(key: str, senders: list[str], seconds: int = 20) -> None:
    """The whole pipeline on one box: wrk posts to /v1/send (20 senders in turn) while workers
    deliver to the sink. Accepted msg/s (202s), delivered msg/s (until the last is sent), loss."""
    from relay.models import Message

    clear_outbox()
    sink = Sink()
    # Three web workers: in alternating runs three accepted more than two in 4 pairs of 4
    # (+5 to +9%, one pair +37% across a change of the machine's pace), and five (gunicorn.conf.py's
    # default on 2 cores) cost more web CPU per message than three (bench/README.md, seventh session).
    web = start(gunicorn(os.environ.get("BENCH_WEB_WORKERS", "3")), "gunicorn-pipeline")
    # One worker process, as docs/deploy.md runs it (a thread pool; the workers need less than
    # one core here). Two, one per core, cost more CPU per message in every process on this
    # box (PostgreSQL's most: twice the backends): bench/README.md, sixth session.
    processes = int(os.environ.get("BENCH_PIPELINE_PROCESSES", "1"))
    threads = int(os.environ.get("BENCH_PIPELINE_THREADS", "8"))
    workers = Workers(threads, "worker-pipeline", processes=processes)
    script = TMP / "pipeline.lua"
    names = ", ".join(f'"{s}"' for s in senders)
    script.write_text(
        f"""wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
local senders = {{{names}}}
local i = 0
request = function()
  i = i + 1
  local body = '{{"sender": "' .. senders[(i % #senders) + 1] .. '", "to": "r' .. i .. '@example.com", '
    .. '"subject": "Benchmark", "text": "' .. string.rep("Hello ", 40) .. '"}}'
  return wrk.format(nil, nil, nil, body)
end
"""
    )
    try:
        wait_for_http(f"http://127.0.0.1:{WEB_PORT}/healthz")
        time.sleep(3)
        started, cpu_before, wrk_before, flushes_before = time.monotonic(), cpu_by_kind(), os.times(), wal_flushes()
        out = sh(
            "wrk", "-t2", "-c8", f"-d{seconds}s", "--latency", "-s", str(script), f"http://127.0.0.1:{WEB_PORT}/v1/send"
        ).stdout
        wrk_after, cpu_web = os.times(), cpu_by_kind()
        accepted_s = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        stop(web)  # Requests still in flight when wrk stopped finish (and commit) first.
        accepted = Message.objects.count()
        wait_all_sent(accepted, timeout=1800)
        elapsed = time.monotonic() - started
        flushes = (wal_flushes() - flushes_before) / accepted
        # Web CPU up to the end of the load (gunicorn is stopped after it), the rest up to the
        # last message sent; wrk's own from the children's times.
        cpu = cpu_per_message(cpu_before, {**cpu_by_kind(), "web": cpu_web.get("web", 0.0)}, accepted)
        wrk_cpu = (wrk_after.children_user + wrk_after.children_system) - (
            wrk_before.children_user + wrk_before.children_system
        )
        cpu["wrk"] = round(wrk_cpu * 1000 / accepted, 2)
    finally:
        workers.stop()
        stop(web)
        report = sink.close()
    received = int(re.search(r"received (\d+)", report).group(1))
    sent = Message.objects.filter(status="sent").count()
    RESULTS["pipeline"] = {
        "seconds_of_load": seconds,
        "web_workers": int(os.environ.get("BENCH_WEB_WORKERS", "3")),
        "worker_processes": processes,
        "threads_per_process": threads,
        "accepted": accepted,
        "accepted_msg_s": round(accepted_s, 1),
        "delivered_msg_s": round(accepted / elapsed, 1),
        "sent": sent,
        "sink_received": received,
        "lost": accepted - received,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "cpu_ms_per_message": cpu,
        "wal_flushes_per_message": round(flushes, 2),
        "worker_synchronous_commit": os.environ.get("RELAY_WORKER_SYNCHRONOUS_COMMIT", "false"),
    }
    print(
        f"pipeline: {accepted} accepted at {accepted_s:.0f}/s, all delivered at {accepted / elapsed:.0f}/s; "
        f"sink received {received}, lost {accepted - received}; CPU ms per message {cpu}; "
        f"WAL flushes per message {flushes:.2f}"
    )


def wal_flushes() -> int:
    """PostgreSQL's WAL flushes so far (pg_stat_wal.wal_sync): the whole server's, so a run
    counts what else uses it too (nothing else, on a quiet machine)."""
    out = sh("psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc", "SELECT wal_sync FROM pg_stat_wal").stdout
    return int(out.strip())


def bench_instructions(key: str, sender: str) -> None:
    """Instructions per request and per delivery, counted by callgrind in a process of their
    own (bench.instructions): what a change to the code costs or saves, whatever the pace of
    the machine. Needs valgrind (`apt-get install valgrind`)."""
    import shutil

    if not shutil.which("valgrind"):
        print("instructions: skipped, valgrind is not installed")
        return

    env = {**os.environ, "BENCH_KEY": key, "BENCH_SENDER": sender, "BENCH_CA_FILE": str(CA_FILE)}

    def instructions(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, check=True)

    def collected(what: str, count: int) -> int:
        out = instructions(
            "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={TMP}/callgrind.%p",
            sys.executable, "-m", "bench.instructions", what, str(count),
        ).stderr  # fmt: skip
        return int(re.search(r"Collected : (\d+)", out).group(1))

    def bytecodes(what: str, count: int) -> str:
        return instructions(sys.executable, "-m", "bench.instructions", what, str(count), "--bytecodes").stdout

    counts = {"bare": 200, "send": 200, "deliver1": 200, "deliver20": 400}
    sink = Sink()
    try:
        switches = collected("bare", 0)  # Turning instrumentation on and off, and nothing else.
        per_item = {}
        for what, count in counts.items():
            if what.startswith("deliver"):
                clear_outbox()
                prefill([sender], count + (30 if what == "deliver1" else 20))  # and the warm-up
            per_item[what] = round((collected(what, count) - switches) / count)
        # Where they go, by function: the same work, its bytecodes counted (no valgrind).
        profiles = {what: bytecodes(what, 50) for what in ("bare", "send")}
        clear_outbox()
        prefill([sender], 30 + 50)
        profiles["deliver1"] = bytecodes("deliver1", 50)
        (ROOT / "bench" / "bytecodes.txt").write_text("\n\n".join(f"# {w}\n{p}" for w, p in profiles.items()))
    finally:
        sink.close()
        clear_outbox()
    RESULTS["instructions"] = {
        "per_request": {"bare_drf": per_item["bare"], "send": per_item["send"]},
        "per_message": {"deliver_batch_1": per_item["deliver1"], "deliver_batch_20": per_item["deliver20"]},
        "send_to_bare": round(per_item["send"] / per_item["bare"], 2),
        "bytecodes": {what: int(profile.split()[0]) for what, profile in profiles.items()},
        "counted": {**counts, "switches": switches},
    }
    print(
        f"instructions: bare {per_item['bare']:,} per request, send {per_item['send']:,} "
        f"(x{per_item['send'] / per_item['bare']:.2f}); delivery {per_item['deliver1']:,} per message alone, "
        f"{per_item['deliver20']:,} in batches of 20"
    )


def bench_profile(senders: list[str], count: int = 300) -> None:
    from relay import delivery
    from relay.models import Message

    clear_outbox()
    prefill(senders[:1], count)
    from django.conf import settings

    ids = list(Message.objects.order_by("id").values_list("public_id", flat=True))
    sink = Sink()
    results, text = {}, []
    try:
        for batch in (1, settings.RELAY_BATCH_SIZE):
            if batch > 1:
                clear_outbox()
                prefill(senders[:1], count)
                ids = list(Message.objects.order_by("id").values_list("public_id", flat=True))
            profiler = cProfile.Profile()
            started = time.monotonic()
            profiler.enable()
            if batch == 1:
                for public_id in ids:
                    delivery.deliver(public_id, batch=batch)
            else:
                # As the worker sees it with one prompt per sender: a task for the oldest due
                # message; each full batch prompts the next.
                while due := Message.objects.filter(status="queued").order_by("id").values_list("public_id")[:1]:
                    delivery.deliver(due[0][0], batch=batch)
            profiler.disable()
            elapsed = time.monotonic() - started
            results[f"batch_{batch}_ms_per_message"] = round(elapsed * 1000 / count, 2)
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
            text.append(f"# {count} deliveries in one thread, batch={batch}: {elapsed * 1000 / count:.2f} ms each\n")
            text.append(out.getvalue())
    finally:
        sink.close()
    RESULTS["profile"] = {"messages": count, **results}
    (ROOT / "bench" / "profile.txt").write_text("\n".join(text))
    print(f"profile (one thread, ms per message): {results}; see bench/profile.txt")


def bench_usage_overhead(key: str, sender: str, count: int = 500) -> None:
    """What recording usage metadata adds to one API request (in-process, no network)."""
    from django.conf import settings
    from django.test import Client
    from django.test.utils import override_settings

    clear_outbox()
    client = Client(HTTP_HOST="127.0.0.1")
    body = send_body(sender)

    def run() -> float:
        for _ in range(20):
            client.post("/v1/send", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}")
        started = time.perf_counter()
        for _ in range(count):
            client.post("/v1/send", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}")
        return (time.perf_counter() - started) * 1000 / count

    with_usage = run()
    without = [m for m in settings.MIDDLEWARE if m != "relay.usage.UsageMiddleware"]
    with override_settings(MIDDLEWARE=without, API_ACCOUNT_RATE_PER_MINUTE=10**9):
        without_usage = run()
    RESULTS["usage_overhead"] = {"with_ms": round(with_usage, 2), "without_ms": round(without_usage, 2)}
    print(f"usage metadata: {with_usage:.2f} ms per send with, {without_usage:.2f} ms without")


def bench_retention(rows: int = 1_000_000) -> None:
    """rotate_logs over a million old request records: time and peak memory (max RSS)."""
    from django.db import connection

    from accounts.models import User

    user = User.objects.get(email="bench@example.org")
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM relay_apirequest")
        cursor.execute(
            """
            INSERT INTO relay_apirequest (user_id, key_prefix, created_at, method, endpoint, status, error_type,
                                          size_bucket, ip, ip_truncated, user_agent)
            SELECT %s, 'drk_bench', now() - interval '40 days' - (g %% 1000) * interval '1 minute', 'POST',
                   CASE WHEN g %% 3 = 0 THEN '/v1/messages' ELSE '/v1/send' END,
                   CASE WHEN g %% 10 = 0 THEN 429 ELSE 202 END,
                   CASE WHEN g %% 10 = 0 THEN 'rate_limited' ELSE '' END,
                   '<1K', '203.0.113.7', false, 'bench'
            FROM generate_series(1, %s) AS g
            """,
            [user.pk, rows],
        )

    def max_rss(*args: str) -> tuple[float, int]:
        started = time.monotonic()
        out = subprocess.run(
            ["/usr/bin/time", "-v", sys.executable, "manage.py", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr).group(1))
        return time.monotonic() - started, rss

    _, baseline = max_rss("check")
    elapsed, rss = max_rss("rotate_logs", "--quiet")
    from relay.models import ApiRequest, DailyUsage

    left = ApiRequest.objects.count()
    folded = sum(DailyUsage.objects.filter(metric="requests.endpoint").values_list("count", flat=True))
    RESULTS["retention"] = {
        "rows": rows,
        "seconds": round(elapsed, 1),
        "max_rss_mb": round(rss / 1024, 1),
        "baseline_rss_mb": round(baseline / 1024, 1),
        "rows_left": left,
        "aggregated": folded,
    }
    print(
        f"rotate_logs: {rows} rows in {elapsed:.1f} s, max RSS {rss / 1024:.0f} MB (manage.py check: {baseline / 1024:.0f} MB); left {left}, aggregated {folded}"
    )


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and all its descendants so far."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return total
    return total + sum(cpu_seconds(int(child)) for child in children)


_KINDS = (
    ("gunicorn", "web"),
    ("celery", "workers"),
    ("postgres", "postgres"),
    ("redis-server", "redis"),
    ("bench.sink", "sink"),
)


def cpu_by_kind() -> dict[str, float]:
    """CPU seconds so far of every process on the machine, summed by kind (web, workers,
    postgres, redis, sink, other): where the two cores went during a run."""
    totals: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        kind = next((name for marker, name in _KINDS if marker in command), "other")
        totals[kind] = totals.get(kind, 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return totals


def cpu_per_message(before: dict[str, float], after: dict[str, float], messages: int) -> dict[str, float]:
    """ms of CPU per message by kind between two `cpu_by_kind` snapshots."""
    return {
        kind: round((after.get(kind, 0.0) - before.get(kind, 0.0)) * 1000 / messages, 2)
        for kind in sorted(after)
        if after.get(kind, 0.0) - before.get(kind, 0.0) > 0.005
    }


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def bench_worker_memory(
    senders: list[str], count: int = int(os.environ.get("BENCH_MEMORY_MESSAGES", "100000"))
) -> None:
    """Worker RSS while it delivers `count` messages: flat means no per-message leak."""
    from relay.models import Message

    clear_outbox()
    prefill_bulk(senders[:4], count)
    sink = Sink()
    proc = worker(8, "worker-memory")
    samples = []
    try:
        started = time.monotonic()
        step = max(1, count // 10)
        next_mark = step
        while time.monotonic() - started < 3600:
            done = Message.objects.filter(status__in=["sent", "failed"]).count()
            if done >= next_mark or done >= count:
                samples.append({"delivered": done, "rss_mb": round(_rss_mb(proc.pid), 1)})
                print(f"memory: {done} delivered, worker RSS {samples[-1]['rss_mb']} MB")
                next_mark += step
            if done >= count:
                break
            time.sleep(0.5)
    finally:
        stop(proc)
        sink.close()
    RESULTS["worker_memory"] = {"messages": count, "samples": samples}


def main() -> None:
    parts = sys.argv[1:] or [
        "accept",
        "delivery",
        "latency",
        "rtt",
        "link",
        "pipeline",
        "instructions",
        "profile",
        "usage",
        "retention",
        "memory",
    ]
    # A sink writes its CA to CA_FILE, which `check` (drake.E005) wants loadable from the
    # migration on; each later sink writes its own.
    Sink().close()
    prepare_database()
    setup_django()
    key, senders = make_account(senders=20)
    if "accept" in parts:
        bench_accept(key, senders[0])
    if "delivery" in parts:
        bench_delivery(senders)
    if "latency" in parts:
        bench_latency(key, senders[0])
    if "rtt" in parts:
        bench_rtt(senders)
    if "link" in parts:
        bench_link(senders)
    if "pipeline" in parts:
        bench_pipeline(key, senders)
    if "instructions" in parts:
        bench_instructions(key, senders[0])
    if "profile" in parts:
        bench_profile(senders)
    if "usage" in parts:
        bench_usage_overhead(key, senders[0])
    if "retention" in parts:
        bench_retention()
    if "memory" in parts:
        bench_worker_memory(senders)
    RESULTS["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "uname": " ".join(os.uname()[2:5])}
    # Merge: a partial run updates its own parts and keeps the others' last figures.
    path = ROOT / "bench" / "results.json"
    merged = json.loads(path.read_text()) if path.exists() else {}
    merged.update(RESULTS)
    path.write_text(json.dumps(merged, indent=2) + "\n")
    print(json.dumps(RESULTS, indent=2))


if __name__ == "__main__":
    main()

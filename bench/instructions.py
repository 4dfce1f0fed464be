"""Instructions per request or per delivery, counted by valgrind's callgrind: a figure the
machine's drift cannot move (bench/README.md, eighth session). Run by `bench.run instructions`,
which starts this module under valgrind with instrumentation off:

    valgrind --tool=callgrind --instr-atstart=no python -m bench.instructions send 200

It warms up, turns instrumentation on (callgrind_control), does the work `count` times, and
turns it off; valgrind's "Collected" line is then the work plus the two switches, which a run
with `count` 0 measures. Only this process is counted: not PostgreSQL, Redis or the sink, and
not the kernel's side of its system calls.

What: `bare` (the bench's bare DRF POST), `send` (POST /v1/send, the snapshot path), both
through Django's WSGIHandler called directly, as gunicorn calls it; `deliver1` and `deliver20`
(relay.delivery.deliver over a pooled STARTTLS connection to the sink, a message per call, or a
batch of 20 per call, per message). The outbox and the sink are the caller's to prepare.

With `--bytecodes` (and without valgrind) it counts the bytecodes the interpreter executes
instead, by function: where the instructions go, as deterministically.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

from bench import run

WARM_UP = 30


def _switch(state: str) -> None:
    subprocess.run(["callgrind_control", "-i", state, str(os.getpid())], check=True, capture_output=True)


def _wsgi_call(app, path: str, body: bytes, key: str | None) -> str:  # noqa: ANN001
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": str(run.WEB_PORT),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
    }
    if key is not None:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    status: list[str] = []
    response = app(environ, lambda line, headers: status.append(line))
    b"".join(response)
    response.close()
    return status[0]


def prepare(what: str, count: int) -> tuple[Callable[[], None], int]:
    """The work of one round and how many rounds make `count` items, warmed up."""
    run.setup_django()
    if what in ("bare", "send"):
        from django.core.handlers.wsgi import WSGIHandler

        app = WSGIHandler()
        key, sender = os.environ["BENCH_KEY"], os.environ["BENCH_SENDER"]
        body = run.send_body(sender).encode()
        path, auth = ("/v1/send", key) if what == "send" else ("/bench/bare", None)

        def work() -> None:
            status = _wsgi_call(app, path, body, auth)
            assert status.startswith("202"), status

        for _ in range(WARM_UP):
            work()
        return work, count
    from relay import delivery
    from relay.models import Message

    batch = {"deliver1": 1, "deliver20": 20}[what]
    # A batch claims its sender's oldest due messages: the next batch starts `batch` later.
    queued = Message.objects.filter(status="queued").order_by("id").values_list("public_id", flat=True)
    ids = iter(list(queued)[::batch])

    def work() -> None:
        assert delivery.deliver(next(ids), batch=batch) == "sent"

    for _ in range(WARM_UP if batch == 1 else 1):  # The first opens the pooled connection.
        work()
    return work, count // batch


def count_bytecodes(work: Callable[[], None], rounds: int, top: int = 40) -> str:
    """Bytecodes executed per round (sys.settrace opcode events, so the interpreter's work in
    Python code only, not in C), in all and by function, inclusive: a deterministic profile."""
    inclusive: Counter = Counter()
    stack: list[tuple[Any, int]] = []
    total = 0

    def trace(frame: Any, event: str, arg: Any) -> Any:
        nonlocal total
        if event == "call":
            frame.f_trace_opcodes = True
            stack.append((frame.f_code, total))
        elif event == "opcode":
            total += 1
        elif event == "return" and stack:
            code, started = stack.pop()
            if all(outer is not code for outer, _ in stack):  # Recursion counts once.
                inclusive[code] += total - started
        return trace

    sys.settrace(trace)
    try:
        for _ in range(rounds):
            work()
    finally:
        sys.settrace(None)
    lines = [f"{total // rounds} bytecodes per round, over {rounds}; by function, inclusive:"]
    for code, n in inclusive.most_common(top):
        where = code.co_filename.split("site-packages/")[-1].replace(f"{run.ROOT}/", "")
        lines.append(f"{n // rounds:8d} {100 * n / total:5.1f}%  {where}:{code.co_name}")
    return "\n".join(lines)


def main() -> None:
    what, count = sys.argv[1], int(sys.argv[2])
    os.environ["SMTP_CA_FILE"] = os.environ["BENCH_CA_FILE"]  # The caller's sink (bench.run made its own).
    work, rounds = prepare(what, count)
    if "--bytecodes" in sys.argv:
        print(count_bytecodes(work, rounds))
        return
    _switch("on")
    for _ in range(rounds):
        work()
    _switch("off")


if __name__ == "__main__":
    main()

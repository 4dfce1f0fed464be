"""An SMTP sink for benchmarks: the project's test server in its own process.

    python -m bench.sink --port 2525 --delay 0.02 --ca-file /tmp/ca.pem [--no-pipelining]
Runs until SIGTERM; prints the number of messages received on exit.
"""

import argparse
import signal
import threading
from pathlib import Path

from drake.testing.smtp import SmtpTestServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--ca-file", required=True)
    parser.add_argument("--no-pipelining", action="store_true", help="do not offer PIPELINING (RFC 2920)")
    args = parser.parse_args()
    server = SmtpTestServer(
        security="starttls",
        username="bench@example.org",
        password="bench-password",
        port=args.port,
        pipelining=not args.no_pipelining,
    )
    server.reply_delay = args.delay
    server.start()
    Path(args.ca_file).write_bytes(Path(server.ca_file).read_bytes())
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    stop.wait()
    server.stop()
    print(f"received {len(server.messages)} max_connections {server.max_connections_seen}", flush=True)


if __name__ == "__main__":
    main()

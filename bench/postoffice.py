"""django-post-office queueing and sending the bench's messages to the bench's sink.

    python -m bench.postoffice COUNT PROCESSES   (started by `bench.run delivery`)

Prints one JSON line: queue and send rates in messages per second.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

os.environ["DJANGO_SETTINGS_MODULE"] = "bench.postoffice_settings"


def main() -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "post_office", verbosity=0)
    from post_office import mail
    from post_office.models import Email

    count, processes = int(sys.argv[1]), int(sys.argv[2])
    Email.objects.all().delete()
    started = time.monotonic()
    for i in range(count):
        mail.send(
            recipients=[f"r{i}@example.com"],
            sender="bench0@example.org",
            subject="Benchmark",
            message="Hello " * 40,
            priority="medium",
        )
    queued = time.monotonic() - started
    started = time.monotonic()
    mail.send_queued_mail_until_done(
        lockfile=os.path.join(tempfile.gettempdir(), "drake-bench-po"), processes=processes
    )
    sent_seconds = time.monotonic() - started
    sent = Email.objects.filter(status=0).count()  # post_office.models.STATUS.sent
    print(
        json.dumps(
            {
                "messages": count,
                "processes": processes,
                "queue_msg_s": round(count / queued, 1),
                "send_msg_s": round(sent / sent_seconds, 1),
                "sent": sent,
            }
        )
    )


if __name__ == "__main__":
    main()

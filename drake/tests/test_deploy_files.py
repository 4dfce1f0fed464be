"""docs/docker-compose.yml and docs/systemd/ as an operator runs them."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docs" / "docker-compose.yml").read_text())


def _seconds(duration: str) -> int:
    return sum(int(n) * {"m": 60, "s": 1}[unit] for n, unit in re.findall(r"(\d+)([ms])", duration))


def test_compose_migrates_once_postgres_answers_and_starts_the_app_after_it():
    """`depends_on` waited only for the containers to start: on a first `up` the one-off migrate
    ran while PostgreSQL was still initialising its volume, failed, was never run again
    (`restart: "no"`), and web, worker and beat ran on an empty database (every page a 500).
    Found by an operator review."""
    services = _compose()["services"]
    assert "test" in services["postgres"]["healthcheck"]
    assert services["migrate"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name


def test_compose_gives_the_web_as_long_to_stop_as_gunicorn_gives_its_requests():
    """Docker's default is 10 s before SIGKILL; gunicorn.conf.py lets in-flight requests finish
    for 30 s (graceful_timeout), as the systemd unit does (TimeoutStopSec=40)."""
    namespace: dict = {}
    exec((ROOT / "gunicorn.conf.py").read_text(), namespace)  # noqa: S102 (the project's own file)
    assert _seconds(_compose()["services"]["web"]["stop_grace_period"]) > namespace["graceful_timeout"]


def _unit(name: str) -> dict[str, str]:
    service: dict[str, str] = {}
    for line in (ROOT / "docs" / "systemd" / name).read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            service[key.strip()] = value.strip()
    return service


def test_the_beat_unit_has_the_folder_its_schedule_is_written_to():
    """Beat writes its schedule under /var/lib/3drake, which nothing created: on a new host it
    stopped at once ("No such file or directory"), restarted for ever, and no sweep, retention
    or grace period ran. Found by an operator review."""
    unit = _unit("drake-beat.service")
    schedule = Path(unit["ExecStart"].split("--schedule", 1)[1].split()[0])
    assert schedule.parent == Path("/var/lib") / unit["StateDirectory"]


def test_the_worker_is_given_the_time_its_longest_delivery_takes_to_stop(settings):
    """A delivery ends at most (REPLY_WAITS + 1) * SMTP_TIMEOUT past RELAY_TASK_TIME_LIMIT
    (150 s with the defaults, deploy.md); compose gave the worker 2 min and systemd exactly 150 s
    before SIGKILL, so a stop during a slow delivery could cut a message mid-body (retried, and
    maybe delivered twice). Found by an operator review."""
    from senders.smtp import REPLY_WAITS

    longest = settings.RELAY_TASK_TIME_LIMIT + (REPLY_WAITS + 1) * settings.SMTP_TIMEOUT
    assert _seconds(_compose()["services"]["worker"]["stop_grace_period"]) > longest
    assert int(_unit("drake-worker.service")["TimeoutStopSec"]) > longest

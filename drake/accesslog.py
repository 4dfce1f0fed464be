"""gunicorn's logs (gunicorn.conf.py's logger_class): JSON lines like the app's own, each access
line with the request's id, and the token of every console link that carries one in its path
masked, as drake.logging masks them in the app's own lines."""

from __future__ import annotations

from typing import Any

import environ
from gunicorn.glogging import Logger

from drake.logging import JsonFormatter, masked_path, request_id


def _log_format() -> str:
    # As drake/settings.py decides it; read here because gunicorn's master sets up its logs
    # before, and without, loading Django's settings.
    env = environ.Env()
    return env.str("LOG_FORMAT", default="plain" if env.bool("DEBUG", default=True) else "json")


class AccessLogger(Logger):
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        if _log_format() == "json":
            for log in (self.error_log, self.access_log):
                for handler in log.handlers:
                    handler.setFormatter(JsonFormatter())

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        # The id RequestIdMiddleware gave the request (its own context is over by now), so the
        # access line carries it as the app's lines do.
        rid = next((value for name, value in resp.headers if name.lower() == "x-request-id"), "")
        token = request_id.set(rid)
        try:
            super().access(resp, req, environ, request_time)
        finally:
            request_id.reset(token)

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        atoms = super().atoms(resp, req, environ, request_time)
        for name in ("U", "r"):  # The path, and the request line with it.
            if isinstance(atoms.get(name), str):
                atoms[name] = masked_path(atoms[name])
        return atoms

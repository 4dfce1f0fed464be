"""gunicorn's access log (gunicorn.conf.py's logger_class), with the token of every console link
that carries one in its path masked, as drake.logging masks them in the app's own lines."""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from drake.logging import masked_path


class AccessLogger(Logger):
    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        atoms = super().atoms(resp, req, environ, request_time)
        for name in ("U", "r"):  # The path, and the request line with it.
            if isinstance(atoms.get(name), str):
                atoms[name] = masked_path(atoms[name])
        return atoms

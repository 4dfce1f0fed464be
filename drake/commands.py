"""The base of the operator commands that take text: a NUL in an argument is a one-line error.

A shell cannot pass a NUL, but a script's call_command or a value read from a file can, and
PostgreSQL refuses text holding one: each account command ended in a DataError traceback.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError


class TextCommand(BaseCommand):
    def execute(self, *args: Any, **options: Any) -> Any:
        for name, value in options.items():
            if isinstance(value, str) and "\x00" in value:
                raise CommandError(f"--{name.replace('_', '-')} holds a NUL character.")
        return super().execute(*args, **options)

#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "drake.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        # A configuration the operator must fix (a secret missing in production, say): its
        # sentence, not twenty lines of traceback ending in it.
        sys.exit(f"3drake cannot start: {exc}")


if __name__ == "__main__":
    main()

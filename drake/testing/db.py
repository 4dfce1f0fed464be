"""Test helpers for the database's side of a connection."""

from __future__ import annotations

from django.db import connection, connections


def backend_pid() -> int:
    """The PostgreSQL backend process serving this thread's default connection."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def terminate(pid: int) -> None:
    """Drop a connection from the server's side, as a restart or an idle timeout would."""
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        other.close()


def dump_every_table() -> bytes:
    """Every row of every table, as text: what a database dump would show."""
    out = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608  (names from introspection)
            out.append(repr(cursor.fetchall()))
    return "\n".join(out).encode()


def tables_mentioning(text: str) -> set[str]:
    """The tables any row of which mentions `text` (case-insensitively), for tests of erasure."""
    found = set()
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608  (names from introspection)
            if text.lower() in repr(cursor.fetchall()).lower():
                found.add(table)
    return found

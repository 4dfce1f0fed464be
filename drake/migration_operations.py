"""Migration operations of the project's own, importable so that Django can write them back out
(squashmigrations)."""

from __future__ import annotations

from typing import Any

from django.db import migrations


class CheapOnPostgres(migrations.SeparateDatabaseAndState):
    """`operations` for the migration state and on other databases (SQLite in development); the
    given SQL on PostgreSQL, for an end state Django's operations would reach only through
    scans that block writes (a new unique index, foreign keys validated again). The SQL must
    reach exactly the state the operations describe; `backward` undoes it."""

    def __init__(self, operations: list[Any], forward: list[str], backward: list[str]) -> None:
        super().__init__(database_operations=operations, state_operations=operations)
        self.operations, self.forward, self.backward = operations, forward, backward

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        kwargs = {"operations": self.operations, "forward": self.forward, "backward": self.backward}
        return type(self).__name__, [], kwargs  # OperationWriter adds the module.

    def _on_postgres(self, schema_editor: Any, statements: list[str]) -> bool:
        if schema_editor.connection.vendor != "postgresql":
            return False
        for statement in statements:
            schema_editor.execute(statement)
        return True

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        if not self._on_postgres(schema_editor, self.forward):
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        if not self._on_postgres(schema_editor, self.backward):
            super().database_backwards(app_label, schema_editor, from_state, to_state)

    def describe(self) -> str:
        return "Custom state/database change combination (hand-written SQL on PostgreSQL)"

"""The few statements of the send path, written once instead of compiled by the ORM per call.

On the 2-core bench machine the ORM spent 2–5 ms of CPU compiling each query of
`POST /v1/send` — more than PostgreSQL took to run it (bench/README.md). These helpers build a
statement's SQL once per model and database vendor and keep Django's own conversions: values go
in through each field's `get_db_prep_save` and come back through the same converters the ORM's
compiler applies (`from_db_value`, backend converters), and instances are made with
`Model.from_db`, as the ORM makes them.

They do not send `pre_save`/`post_save` signals; nothing in 3drake listens to them for the
models written here. Use them only on paths measured to need it; the ORM is the default.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cache
from typing import Any, TypeVar

from django.db import connections, models, router

M = TypeVar("M", bound=models.Model)
Converter = Callable[[Any, Any, Any], Any]


@cache
def _insert_sql(model: type[models.Model], vendor: str) -> tuple[str, str, tuple[Preparer, ...]]:
    """`INSERT INTO table (columns)`, one row of placeholders `(%s, ...)`, and how to read each
    column's value, once per model (an auto primary key is left to the database)."""
    connection = connections[router.db_for_write(model)]
    qn = connection.ops.quote_name
    fields = tuple(f for f in model._meta.concrete_fields if not (f.primary_key and isinstance(f, models.AutoField)))
    head = f"INSERT INTO {qn(model._meta.db_table)} ({', '.join(qn(f.column) for f in fields)})"
    return head, f"({', '.join(['%s'] * len(fields))})", tuple(_preparer(f) for f in fields)


# How a value of an exact builtin type goes into a statement for a field of exactly one of
# Django's classes: the last step of that class's `get_db_prep_save`, the backend's own
# adaptation, without the generic chain before it (get_prep_value, to_python, Promise checks:
# about 160 bytecodes a field, 3,800 for a Message, an eighth of a send; bench/README.md).
# Anything else, a subclass, another type, goes through `get_db_prep_save` as before;
# drake/tests/test_sql.py checks both give the same for every field written here.
_STRINGS = (models.CharField, models.EmailField, models.SlugField, models.TextField, models.URLField)
_INTEGERS = (
    models.IntegerField,
    models.BigIntegerField,
    models.SmallIntegerField,
    models.PositiveIntegerField,
    models.PositiveBigIntegerField,
    models.PositiveSmallIntegerField,
)
_AUTO = (models.AutoField, models.BigAutoField, models.SmallAutoField)
Adapt = Callable[[Any, Any], Any] | None  # (value, connection) -> parameter; None: the value as is.


def _adapters(field: models.Field) -> dict[type, Adapt]:
    """By a value's exact type, how it goes into `field`'s column directly (every class here
    keeps None as None); a type not in it takes Django's own conversion."""
    kind = type(field)
    if kind in (models.ForeignKey, models.OneToOneField):
        return _adapters(field.target_field)
    if kind in _STRINGS:
        return {type(None): None, str: None}
    if kind is models.BooleanField:
        return {type(None): None, bool: None}
    if kind in _INTEGERS:
        internal_type = field.get_internal_type()
        return {
            type(None): None,
            int: lambda value, connection: connection.ops.adapt_integerfield_value(value, internal_type),
        }
    if kind in _AUTO:
        return {type(None): None, int: lambda value, connection: connection.ops.validate_autopk_value(value)}
    if kind is models.DateTimeField:

        def adapt_datetime(value: datetime, connection: Any) -> Any:
            if value.utcoffset() is None:  # Naive: Django's warning and conversion.
                return field.get_db_prep_save(value, connection)
            return connection.ops.adapt_datetimefield_value(value)

        return {type(None): None, datetime: adapt_datetime}
    if kind is models.JSONField:
        encoder = field.encoder

        def adapt_json(value: Any, connection: Any) -> Any:
            return connection.ops.adapt_json_value(value, encoder)

        return {type(None): None, dict: adapt_json, list: adapt_json}
    return {}


Preparer = tuple[str, Any, dict[type, Adapt], Callable[[Any, Any], Any]]


def _preparer(field: models.Field) -> Preparer:
    """How `_values` reads and converts one field: (attname, its pre_save or None, the direct
    adapters by type, Django's conversion)."""
    own_pre_save = type(field).pre_save is not models.Field.pre_save and (
        not isinstance(field, models.DateField) or field.auto_now or field.auto_now_add
    )
    return field.attname, field.pre_save if own_pre_save else None, _adapters(field), field.get_db_prep_save


def _values(obj: models.Model, preparers: Sequence[Preparer], connection: Any) -> list[Any]:
    """`[f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]`, faster."""
    values = []
    for attname, pre_save, adapters, prepare in preparers:
        value = getattr(obj, attname) if pre_save is None else pre_save(obj, True)
        adapt = adapters.get(type(value), prepare)
        values.append(value if adapt is None else adapt(value, connection))
    return values


def insert_where(obj: models.Model, condition: str, connection: Any) -> tuple[str, list[Any]]:
    """`INSERT INTO table (columns) SELECT %s, ... WHERE <condition>` of `obj` and its
    parameters: an insert that happens only if `condition` holds, for a statement that writes
    more than one table (a data-modifying WITH on PostgreSQL). The key is left to the database."""
    head, row, preparers = _insert_sql(type(obj), connection.vendor)
    return f"{head} SELECT {row[1:-1]} WHERE {condition}", _values(obj, preparers, connection)


def insert_rows(objs: Sequence[models.Model], connection: Any, where: str = "") -> tuple[str, list[Any]]:
    """`INSERT INTO table (columns) VALUES (...), (...)` of new instances of one model and its
    parameters, for a statement that writes more than one table. Their keys are not set.

    With `where`, only the rows for which it holds go in: `INSERT ... SELECT * FROM (VALUES
    ...) AS row (columns) WHERE <where>`, a condition on `row.<column>`."""
    head, row, preparers = _insert_sql(type(objs[0]), connection.vendor)
    params = [value for obj in objs for value in _values(obj, preparers, connection)]
    rows = ", ".join([row] * len(objs))
    if not where:
        return f"{head} VALUES {rows}", params
    columns = head[head.index("(") :]
    return f"{head} SELECT * FROM (VALUES {rows}) AS row {columns} WHERE {where}", params  # noqa: S608 (our names)


@cache
def _unchanged_sql(model: type[models.Model], attnames: tuple[str, ...], vendor: str) -> tuple[str, tuple]:
    connection = connections[router.db_for_read(model)]
    qn = connection.ops.quote_name
    fields = tuple(model._meta.get_field(name) for name in attnames)
    same = " IS NOT DISTINCT FROM " if vendor == "postgresql" else " IS "
    checks = " AND ".join(f"{qn(f.column)}{same}%s" for f in fields)
    pk = qn(model._meta.pk.column)
    return f"EXISTS (SELECT 1 FROM {qn(model._meta.db_table)} WHERE {pk} = %s AND {checks})", fields  # noqa: S608


def unchanged(obj: models.Model, attnames: tuple[str, ...], connection: Any) -> tuple[str, list[Any]]:
    """A condition, `EXISTS (...)`, and its parameters: true while `obj`'s row still exists and
    holds the values `obj` has in the fields `attnames` (NULL equal to NULL). For a statement
    that must act only on what a snapshot (drake.snapshots) says, decided in the database."""
    condition, fields = _unchanged_sql(type(obj), attnames, connection.vendor)
    values = [f.get_db_prep_value(getattr(obj, f.attname), connection) for f in fields]
    return condition, [obj.pk, *values]


def absent(model: type[models.Model], attname: str, value: Any, connection: Any) -> tuple[str, list[Any]]:
    """A condition: no row of `model` has `value` in `attname` (the snapshot knew of none)."""
    qn = connection.ops.quote_name
    field = model._meta.get_field(attname)
    table = qn(model._meta.db_table)
    return f"NOT EXISTS (SELECT 1 FROM {table} WHERE {qn(field.column)} = %s)", [value]  # noqa: S608


def insert(obj: models.Model) -> models.Model:
    """INSERT one new instance, as `obj.save(force_insert=True)` does, minus the signals."""
    model = type(obj)
    using = router.db_for_write(model, instance=obj)
    connection = connections[using]
    head, row, preparers = _insert_sql(model, connection.vendor)
    sql = f"{head} VALUES {row}"
    returning = isinstance(model._meta.pk, models.AutoField)
    if returning:
        sql += f" RETURNING {connection.ops.quote_name(model._meta.pk.column)}"
    with connection.cursor() as cursor:
        cursor.execute(sql, _values(obj, preparers, connection))
        if returning:
            obj.pk = cursor.fetchone()[0]
    obj._state.adding = False
    obj._state.db = using
    return obj


def insert_many(objs: Sequence[models.Model]) -> None:
    """INSERT new instances of one model whose keys nobody reads back (executemany: psycopg
    sends the rows as one pipeline). Their primary keys are not set."""
    if not objs:
        return
    model = type(objs[0])
    connection = connections[router.db_for_write(model)]
    head, row, preparers = _insert_sql(model, connection.vendor)
    with connection.cursor() as cursor:
        cursor.executemany(f"{head} VALUES {row}", [_values(obj, preparers, connection) for obj in objs])


class Columns:
    """The columns of one model under a table alias, and how to make an instance from them."""

    def __init__(self, model: type[M], alias: str, only: tuple[str, ...] = ()) -> None:
        """`only`: these fields (the primary key among them), the others deferred."""
        self.model = model
        self.alias = alias
        concrete = model._meta.concrete_fields
        self.fields = tuple(f for f in concrete if f.name in only) if only else tuple(concrete)
        self.names = [f.attname for f in self.fields]
        self.pk_index = self.fields.index(model._meta.pk)

    def sql(self, connection: Any) -> str:
        qn = connection.ops.quote_name
        return ", ".join(f"{qn(self.alias)}.{qn(f.column)}" for f in self.fields)

    def converters(self, connection: Any) -> list[tuple[int, Any, list[Converter]]]:
        """(index, column expression, converters) of each column whose value needs converting."""
        found = []
        for index, field in enumerate(self.fields):
            column = field.get_col(self.alias)
            chain = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
            if chain:
                found.append((index, column, chain))
        return found

    def __len__(self) -> int:
        return len(self.fields)


class Select:
    """One SELECT over several models' columns, made into instances: `rows(params)`.

    `build(columns_sql_list) -> sql` receives each Columns' select list in order and returns the
    whole statement with `%s` placeholders. A row whose primary key column is NULL (an outer
    join that found nothing) gives None for that model.
    """

    def __init__(self, *columns: Columns, build: Callable[..., str], using: str = "default") -> None:
        self.columns = columns
        self.build = build
        self.using = using

    @cache  # noqa: B019  (one per module-level statement, kept for the process's life)
    def _compiled(self, vendor: str) -> tuple[str, list[list[tuple[int, Any, list[Converter]]]]]:
        connection = connections[self.using]
        sql = self.build(*(c.sql(connection) for c in self.columns))
        return sql, [c.converters(connection) for c in self.columns]

    def rows(self, params: Sequence[Any]) -> list[tuple[models.Model | None, ...]]:
        connection = connections[self.using]
        sql, converters = self._compiled(connection.vendor)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            fetched = cursor.fetchall()
        result = []
        for row in fetched:
            instances: list[models.Model | None] = []
            start = 0
            for columns, chains in zip(self.columns, converters, strict=True):
                values = list(row[start : start + len(columns)])
                start += len(columns)
                if values[columns.pk_index] is None:
                    instances.append(None)
                    continue
                for index, expression, chain in chains:
                    for convert in chain:
                        values[index] = convert(values[index], expression, connection)
                instances.append(columns.model.from_db(self.using, columns.names, values))
            result.append(tuple(instances))
        return result

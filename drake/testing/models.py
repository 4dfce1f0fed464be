"""Comparing model instances in tests."""

from __future__ import annotations

from typing import Any

from django.db import models


def fields_of(obj: models.Model) -> dict[str, Any]:
    """Every concrete field's value, by attribute name: two loads of one row compare equal."""
    return {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields}

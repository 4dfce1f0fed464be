"""The API's request parsers (REST_FRAMEWORK's DEFAULT_PARSER_CLASSES): imported by DRF's
settings, so nothing here imports DRF's views."""

from __future__ import annotations

from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, except that a document nested too deeply for Python's parser
    (100,000 "[" fit in a request) is a parse error, a 400, not a RecursionError and a 500."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError("JSON parse error - nested too deeply.") from exc

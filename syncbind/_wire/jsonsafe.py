"""Values as the wire carries them: what ``json.dumps`` accepts, the same for replies,
pushes and the messages hubs exchange."""

from __future__ import annotations

import datetime
import decimal
import uuid
from typing import Any

from django.db.models.fields.files import FieldFile
from django.utils.duration import duration_iso_string

_PRIMITIVES = (str, int, float, bool, type(None))


def to_json_safe(value: Any) -> Any:
    """Convert a model value to what ``json.dumps`` accepts: ISO 8601 dates and times,
    Decimal and UUID as strings, files as their name, bytes as hex."""
    if isinstance(value, _PRIMITIVES):
        return value
    if isinstance(value, list | tuple):
        return [to_json_safe(item) for item in value]
    if isinstance(value, dict):
        return {str(key): to_json_safe(item) for key, item in value.items()}
    if isinstance(value, FieldFile):
        return value.name or None
    if isinstance(value, datetime.date | datetime.time):
        # Full precision (DjangoJSONEncoder would cut microseconds), in UTC with "Z": what
        # a write replies is what a later read returns, whatever offset it was sent with.
        if isinstance(value, datetime.datetime) and value.tzinfo is not None:
            value = value.astimezone(datetime.UTC)
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, datetime.timedelta):
        return duration_iso_string(value)
    if isinstance(value, decimal.Decimal):
        return format(value, "f") if value.is_finite() else str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return str(value)

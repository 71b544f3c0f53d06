"""What one binding offers, as JSON: its events, their data and replies, fields, filters, errors.

:func:`describe_binding` describes a binding made for a request: the fields
are those its serializer shows that request (a binding may choose them per
user), and, for a connection, each event says whether it is permitted.
Schemas are JSON Schema; ``{"$ref": "#/schemas/<name>"}`` points into the
description's own ``schemas``. The AsyncAPI, OpenAPI and TypeScript writers
(:mod:`syncbind.schema.documents`) and the ``describe`` event all start here.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import AnonymousUser
from django.db import models

from syncbind._auth.decide import DESCRIBE
from syncbind._bindings.request import Request
from syncbind._wire.protocol import Message, join_event
from syncbind.exceptions import SyncbindError
from syncbind.schema import types
from syncbind.serializers import ModelSerializer
from syncbind.settings import api_settings

if TYPE_CHECKING:
    from syncbind._auth.connection import Connection
    from syncbind.bindings import BindingBase


# Every event may answer these (docs/protocol.md, "Error replies").
COMMON_ERRORS = (
    "bad_request",
    "too_large",
    "unknown_event",
    "not_authenticated",
    "permission_denied",
    "rate_limited",
    "timeout",
    "server_error",
)
# And each action these besides.
ACTION_ERRORS: dict[str, tuple[str, ...]] = {
    "retrieve": ("invalid", "not_found", "limit_exceeded"),
    "list": ("invalid", "limit_exceeded"),
    "search": ("invalid", "limit_exceeded"),
    "subscribe": ("invalid", "not_found", "limit_exceeded"),
    "unsubscribe": ("invalid",),
    "create": ("invalid",),
    "update": ("invalid", "not_found"),
    "save": ("invalid", "not_found"),
    "delete": ("invalid", "not_found"),
    DESCRIBE: ("invalid",),
}
CUSTOM_ERRORS = ("invalid", "not_found")

SUMMARIES = {
    "retrieve": "One row by its id.",
    "list": "A page of rows: filters, ordering, page and limit.",
    "search": "As list, plus a query every word of which must match one of the search fields.",
    "subscribe": "Follow a row (with an id) or a page (list parameters): pushes follow.",
    "unsubscribe": "Stop following a row (with an id), a tag's subscriptions, or all of the stream's.",
    "create": "A new row.",
    "update": "Change the fields sent of a row.",
    "save": "create without an id, update with one.",
    "delete": "Delete a row.",
    DESCRIBE: "This description, for the connection asking.",
}


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/schemas/{name}"}


def request_for(
    binding_class: type[BindingBase], user: Any = None, connection: Connection | None = None
) -> Request:
    """A request of the ``describe`` event on ``binding_class``'s stream."""
    stream = binding_class.get_stream()
    message = Message(event=join_event(stream, DESCRIBE), stream=stream, action=DESCRIBE)
    return Request(message, connection, user=user)


def describe(binding_class: type[BindingBase], user: Any = None) -> dict[str, Any]:
    """``binding_class`` described as ``user`` (anonymous by default) would be shown
    it; no event is checked against the user's permissions."""
    request = request_for(binding_class, user=user or AnonymousUser())
    return describe_binding(binding_class(request=request, action=DESCRIBE))


def describe_binding(binding: BindingBase, *, permitted: bool = False) -> dict[str, Any]:
    """``binding`` (made for a request) described; with ``permitted`` each event says
    whether the request's user may send it (as its permission classes decide)."""
    model = binding.get_model()
    schemas = _schemas(binding, model)
    events = {
        name: _event(binding, name, attr, permitted)
        for name, (attr, _spec) in binding.events.items()
    }
    out: dict[str, Any] = {
        "stream": binding.get_stream(),
        "model": model._meta.label,
        "title": str(model._meta.verbose_name),
        "events": events,
        "pushes": _pushes(events),
        "schemas": schemas,
        "writable": sorted(schemas["create"]["properties"]),
        "filters": sorted(schemas["filters"]["properties"]),
        "search_fields": binding.get_search_fields(),
        "ordering": {
            "fields": binding.get_ordering_fields(),
            "default": binding.get_default_ordering(),
        },
        "pagination": {
            "page_size": binding.get_page_size(),
            "max_page_size": api_settings.MAX_PAGE_SIZE,
        },
    }
    return out


# -- schemas -------------------------------------------------------------------------


def _schemas(binding: BindingBase, model: type[models.Model]) -> dict[str, Any]:
    serializer = binding.get_serializer()
    row, create = _row_and_create(binding, serializer, model)
    key = types.key_schema(model)
    update = {
        "type": "object",
        "properties": {"id": key, **create["properties"]},
        "required": ["id"],
        "additionalProperties": False,
    }
    return {
        "key": key,
        "row": row,
        "create": create,
        "update": update,
        "filters": _filters(binding),
        "list": _list_data(binding, search=False),
        "search": _list_data(binding, search=True),
        "page": {
            "type": "object",
            "properties": {
                "page": {"type": "integer", "minimum": 1},
                "limit": {"type": "integer", "minimum": 1},
                "count": {"type": "integer", "minimum": 0},
                "rows": {"type": "array", "items": ref("row")},
            },
            "required": ["page", "limit", "count", "rows"],
        },
        "written": {
            "type": "object",
            "properties": {"success": {"const": True}, "id": ref("key"), "row": ref("row")},
            "required": ["success", "id", "row"],
        },
        "deleted": _success(id=ref("key")),
        "success": _success(),
    }


def _success(**properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"success": {"const": True}, **properties},
        "required": ["success", *properties],
    }


def _row_and_create(
    binding: BindingBase, serializer: Any, model: type[models.Model]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The schema of a row, and of a create's data."""
    if isinstance(serializer, ModelSerializer):
        return _native(serializer)
    if getattr(serializer, "serializer_class", None) is not None:
        return _drf(serializer.serializer_class(context=serializer.context))
    # A serializer of one's own: nothing known beyond the primary key.
    key = model._meta.pk.name
    row = {"type": "object", "properties": {key: types.key_schema(model)}, "required": [key]}
    return row, {"type": "object", "properties": {}}


def _native(serializer: ModelSerializer) -> tuple[dict[str, Any], dict[str, Any]]:
    writable = [name for name in serializer.field_names if name in serializer.writable_fields]
    properties: dict[str, Any] = {}
    for name in serializer.field_names:
        schema = _output_schema(serializer, name)
        if name not in writable:
            schema["readOnly"] = True
        properties[name] = schema
    form = serializer.get_form_class(tuple(writable))()
    inputs: dict[str, Any] = {}
    required = []
    for name in writable:
        field = serializer.model._meta.get_field(name)
        inputs[name] = types.model_field_schema(field, writing=True)
        if _required(field, form.fields.get(name)):
            required.append(name)
    row = {"type": "object", "properties": properties, "required": list(properties)}
    return row, _object(inputs, required)


def _output_schema(serializer: ModelSerializer, name: str) -> dict[str, Any]:
    field = serializer.model_field(name)
    if field is not None:
        return types.model_field_schema(field)
    related = serializer.related_path(name)
    if related is not None:
        hops, last = related
        target: Any = hops[-1].related_model
        try:
            final = target._meta.get_field(last)
        except Exception:
            return dict(types.ANY)
        # Absent when a foreign key on the way is empty or the row may not be shown.
        return types.nullable(types.model_field_schema(final))
    return dict(types.ANY)  # a property or method of the model


def _required(field: Any, form_field: Any) -> bool:
    """Whether a create must send ``field`` (syncbind.writes: JSON fields are checked
    apart from the form)."""
    if isinstance(field, models.JSONField):
        return not field.has_default() and not field.blank
    # A field left out of a create takes the model's default.
    return bool(form_field is not None and form_field.required and not field.has_default())


def _drf(serializer: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    shown = {name: f for name, f in serializer.fields.items() if not f.write_only}
    properties = {name: types.drf_field_schema(f) for name, f in shown.items()}
    row = {"type": "object", "properties": properties, "required": list(properties)}
    inputs: dict[str, Any] = {}
    required = []
    for name, field in serializer.fields.items():
        if field.read_only:
            continue
        schema = types.drf_field_schema(field)
        schema.pop("writeOnly", None)
        inputs[name] = schema
        if field.required:
            required.append(name)
    return row, _object(inputs, required)


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        out["required"] = required
    out["additionalProperties"] = False
    return out


def _filters(binding: BindingBase) -> dict[str, Any]:
    filterset_class = binding.get_filterset_class()
    specs = filterset_class.base_filters if filterset_class is not None else {}
    return {
        "type": "object",
        "properties": {name: types.filter_schema(name, spec) for name, spec in specs.items()},
        "additionalProperties": False,
    }


def _list_data(binding: BindingBase, *, search: bool) -> dict[str, Any]:
    terms = binding.get_ordering_fields()
    positive = {"type": ["integer", "string"], "minimum": 1, "pattern": "^[0-9]+$"}
    properties: dict[str, Any] = {
        "page": positive,
        "limit": {**positive, "description": f"At most {api_settings.MAX_PAGE_SIZE}."},
        "filters": ref("filters"),
        "ordering": _ordering(terms),
        "query": {"type": "string", "maxLength": api_settings.MAX_SEARCH_LENGTH},
        "subscribe": {"type": "boolean"},
    }
    out = _object(properties, ["query"] if search else [])
    return out


def _ordering(terms: list[str]) -> dict[str, Any]:
    if not terms:  # only the default order: nothing to choose
        return {"anyOf": [{"const": ""}, {"type": "array", "maxItems": 0}]}
    return {
        "description": "A field name, '-' before it for descending; several in a list "
        "or separated by commas.",
        "anyOf": [
            {"type": "string"},
            {"type": "array", "items": {"enum": [*terms, *(f"-{t}" for t in terms)]}},
        ],
    }


# -- events ----------------------------------------------------------------------------

ROW_DATA = {
    "type": "object",
    "properties": {"id": ref("key"), "subscribe": {"type": "boolean"}},
    "required": ["id"],
    "additionalProperties": False,
}
ID_DATA = {
    "type": "object",
    "properties": {"id": ref("key")},
    "required": ["id"],
    "additionalProperties": False,
}
BUILTIN_SHAPES: dict[str, tuple[Any, Any]] = {
    "retrieve": (ROW_DATA, ref("row")),
    "list": (ref("list"), ref("page")),
    "search": (ref("search"), ref("page")),
    "subscribe": (
        {"anyOf": [ID_DATA, ref("list")]},
        {"anyOf": [ref("success"), ref("page")]},
    ),
    "unsubscribe": (
        {"type": "object", "properties": {"id": ref("key")}, "additionalProperties": False},
        ref("success"),
    ),
    "create": (ref("create"), ref("written")),
    "update": (ref("update"), ref("written")),
    "save": ({"anyOf": [ref("create"), ref("update")]}, ref("written")),
    "delete": (ID_DATA, ref("deleted")),
    DESCRIBE: (
        {"type": "object", "additionalProperties": False},
        {"type": "object", "description": "This description."},
    ),
}


def _event(binding: BindingBase, name: str, attr: str, permitted: bool) -> dict[str, Any]:
    declared = binding.get_event_schemas().get(name, {})
    builtin = name in BUILTIN_SHAPES and attr == name
    if builtin:
        data, reply = BUILTIN_SHAPES[name]
        summary = SUMMARIES[name]
    else:
        data, reply = {"type": "object"}, dict(types.ANY)
        summary = inspect.cleandoc(getattr(binding, attr).__doc__ or "").split("\n\n")[0]
    out: dict[str, Any] = {
        "builtin": builtin,
        "data": declared.get("data", data),
        "reply": declared.get("reply", reply),
        "errors": sorted({*COMMON_ERRORS, *ACTION_ERRORS.get(name, CUSTOM_ERRORS)}),
    }
    if summary:
        out["description"] = summary
    if permitted:
        out["permitted"] = _permitted(binding, name)
    return out


def _permitted(binding: BindingBase, name: str) -> bool:
    """Whether the permission classes let this request's user send ``name`` (object
    permissions aside: they are decided per row)."""
    if name == DESCRIBE:
        return True  # this very request was let through
    other = type(binding).for_action(binding.request, name)
    try:
        other.check_permissions(other.request)
    except SyncbindError:
        return False
    return True


def _pushes(events: dict[str, Any]) -> dict[str, Any]:
    """The pushes a subscription brings (docs/protocol.md, "Pushes")."""
    pushes: dict[str, Any] = {}
    if "retrieve" in events or "subscribe" in events:
        pushes["retrieve"] = ref("row")
        pushes["delete"] = ID_DATA
    for name in ("list", "search"):
        if name in events or "subscribe" in events:
            pushes[name] = ref("page")
    return pushes

"""The ``describe`` event every binding serves: its description, for the connection asking."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar, cast

from syncbind._bindings.events import event
from syncbind._wire.parameters import check_parameters
from syncbind.permissions import PermissionsMixin
from syncbind.schema.describe import DESCRIBE, describe_binding

if TYPE_CHECKING:
    from syncbind._bindings.request import Request
    from syncbind.bindings import BindingBase


class DescribeMixin(PermissionsMixin):
    """``describe`` (part of ``BindingBase``), and the schemas custom events declare."""

    #: ``{"restock": {"data": {JSON Schema}, "reply": {JSON Schema}}}``: the shapes of
    #: custom events, which the binding's code alone knows (any object and any reply
    #: otherwise). ``{"$ref": "#/schemas/row"}`` names the stream's row, and so on.
    event_schemas: ClassVar[dict[str, dict[str, Any]]] = {}

    def get_event_schemas(self) -> dict[str, dict[str, Any]]:
        return dict(self.event_schemas)

    @event(atomic=False)
    def describe(self, request: Request) -> dict[str, Any]:
        """``{}`` → this stream's description (docs/protocol.md, "describe")."""
        check_parameters(request.data, frozenset())
        # This mixin is a base of BindingBase only: self is one.
        return describe_binding(cast("BindingBase", self), permitted=True)

    def check_permissions(self, request: Request) -> None:
        """``describe`` is refused exactly as a ``retrieve`` would be (whatever an
        object permission would say of a row: there is none)."""
        if self.action != DESCRIBE:
            return super().check_permissions(request)
        message = request.message
        as_retrieve = replace(
            message, event=message.event_for("retrieve"), action="retrieve", data={}
        )
        retrieve_request = request.with_message(as_retrieve)
        binding_class = type(cast("BindingBase", self))
        binding = binding_class(request=retrieve_request, action="retrieve")
        binding.check_permissions(retrieve_request)

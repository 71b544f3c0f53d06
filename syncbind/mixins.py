"""One mixin per action. Each reads ``request.data`` and returns the reply data;
side effects go through ``perform_*`` hooks, which bindings override::

    def perform_create(self, write):
        return write.save(owner=self.request.user)
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from django.db import models

from syncbind._bindings.events import event
from syncbind._bindings.request import KEEP, effective_action
from syncbind._wire import parameters
from syncbind.schema.describe import describe_binding

if TYPE_CHECKING:
    # The parts of a binding call each other's hooks: see syncbind._bindings.surface.
    from syncbind._bindings.request import Request
    from syncbind._bindings.surface import Binding
    from syncbind.bindings import BindingBase
else:
    Binding = object


class DescribeMixin(Binding):
    """Every binding's: decided as a ``retrieve`` is (:func:`syncbind._auth.decide.authorize`)."""

    @event(atomic=False)
    def describe(self, request: Request) -> dict[str, Any]:
        """``{}`` → this stream's description (docs/protocol.md, "describe")."""
        parameters.check_parameters(request.data, frozenset())
        # A base of BindingBase only: self is one.
        return describe_binding(cast("BindingBase", self), permitted=True)


class RetrieveMixin(Binding):
    @event(atomic=False)
    def retrieve(self, request: Request) -> dict[str, Any]:
        """``{"id": pk}`` → the serialized row (``not_found`` outside the queryset)."""
        parameters.check_parameters(request.data, parameters.ROW)
        subscribing = self.get_auto_subscribe()
        if not subscribing:
            return self.get_serializer().serialize(self.get_object())
        return self.live_object(self.get_lookup_value(), explicit=subscribing == KEEP)[1]


class ListMixin(Binding):
    @event(atomic=False)
    def list(self, request: Request) -> dict[str, Any]:
        """``{"page", "limit", "filters", "ordering"}`` → ``{"page", "limit", "count", "rows"}``."""
        return self.live_page()


class SearchMixin(Binding):
    @event(atomic=False)
    def search(self, request: Request) -> dict[str, Any]:
        """As ``list``, plus ``"query"``: every word must match one of ``search_fields``."""
        return self.live_page()


class SubscribeMixin(Binding):
    @event(atomic=False)
    def subscribe(self, request: Request) -> dict[str, Any]:
        """``{"id": pk}`` → ``{"success": true}``, then pushes of that row; list
        parameters (no id) → the page, then pushes of it under ``<stream>.list``
        (``search`` when there is a ``query``), with this event's tag."""
        if "id" in request.data:
            self.live_object(self.get_lookup_value(), explicit=True)
            return {"success": True}
        return self.live_page(force=True)

    @event(atomic=False)
    def unsubscribe(self, request: Request) -> dict[str, Any]:
        """``{"id": pk}``: that row; a tagged event: that tag's subscriptions;
        ``{}``: every subscription of this connection on the stream."""
        subscriptions = getattr(request.connection, "subscriptions", None)
        pk = self.get_lookup_value() if "id" in request.data else None
        if subscriptions is not None:
            subscriptions.unsubscribe(self.get_stream(), pk=pk, tag=request.tag)
        return {"success": True}


class CreateMixin(Binding):
    @event
    def create(self, request: Request) -> dict[str, Any]:
        """``{field: value}`` → ``{"success": true, "id": pk, "row": {...}}``."""
        write = self.validate(request.data)
        instance = self.perform_create(write)
        return self.write_result(instance)

    def perform_create(self, write: Any) -> models.Model:
        """Save a validated new row and return it. Runs inside the event's transaction."""
        return write.save()


class UpdateMixin(Binding):
    @event
    def update(self, request: Request) -> dict[str, Any]:
        """``{"id": pk, field: value}`` → as create; only the given fields change."""
        obj = self.get_object()
        data = {key: value for key, value in request.data.items() if key != "id"}
        write = self.validate(data, instance=obj)
        instance = self.perform_update(write)
        return self.write_result(instance)

    def perform_update(self, write: Any) -> models.Model:
        """Save a validated change of an existing row (only its fields) and return it."""
        return write.save()


class SaveMixin(Binding):
    if TYPE_CHECKING:  # from CreateMixin and UpdateMixin, which it is used with

        def create(self, request: Request) -> dict[str, Any]: ...
        def update(self, request: Request) -> dict[str, Any]: ...

    @event
    def save(self, request: Request) -> dict[str, Any]:
        """``create`` when ``data`` has no ``id``, ``update`` otherwise (as the
        permissions decide it: :func:`~syncbind._bindings.request.effective_action`)."""
        if effective_action("save", request.data) == "create":
            data = {key: value for key, value in request.data.items() if key != "id"}
            # The hooks read self.request: they see the request without its "id".
            self.request = request.with_message(replace(request.message, data=data))
            return self.create(self.request)
        return self.update(request)


class DeleteMixin(Binding):
    @event
    def delete(self, request: Request) -> dict[str, Any]:
        """``{"id": pk}`` → ``{"success": true, "id": pk}``."""
        parameters.check_parameters(request.data, frozenset({"id"}))
        obj = self.get_object()
        pk = obj.pk
        self.perform_delete(obj)
        return {"success": True, "id": self.get_serializer().serialize_pk(pk)}

    def perform_delete(self, obj: models.Model) -> None:
        obj.delete()

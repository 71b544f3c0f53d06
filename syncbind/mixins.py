"""One mixin per action. Each reads ``request.data`` and returns the reply data;
side effects go through ``perform_*`` hooks, which bindings override::

    def perform_create(self, request, write):
        return write.save(owner=request.user)
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from django.db import models

from .decorators import event


class RetrieveMixin:
    @event(atomic=False)
    def retrieve(self, request) -> dict[str, Any]:
        """``{"id": pk}`` → the serialized row (``not_found`` outside the queryset)."""
        obj = self.get_object(request)
        self.subscribe_instance(request, obj)
        return self.get_serializer().serialize(obj)


class ListMixin:
    @event(atomic=False)
    def list(self, request) -> dict[str, Any]:
        """``{"page", "limit", "filters", "ordering"}`` → ``{"page", "limit", "count", "rows"}``."""
        self.subscribe_page(request)
        return self.get_page(request)


class SearchMixin:
    @event(atomic=False)
    def search(self, request) -> dict[str, Any]:
        """As ``list``, plus ``"query"``: every word must match one of ``search_fields``."""
        self.subscribe_page(request)
        return self.get_page(request)


class CreateMixin:
    @event
    def create(self, request) -> dict[str, Any]:
        """``{field: value}`` → ``{"success": true, "id": pk, "row": {...}}``."""
        write = self.get_serializer().validate(request.data, instance=None, partial=False)
        instance = self.perform_create(request, write)
        return self.write_result(instance)

    def perform_create(self, request, write) -> models.Model:
        """Save a validated new row and return it. Runs inside the event's transaction."""
        return write.save()


class UpdateMixin:
    @event
    def update(self, request) -> dict[str, Any]:
        """``{"id": pk, field: value}`` → as create; only the given fields change."""
        obj = self.get_object(request)
        data = {key: value for key, value in request.data.items() if key != "id"}
        write = self.get_serializer().validate(data, instance=obj, partial=True)
        instance = self.perform_update(request, write)
        return self.write_result(instance)

    def perform_update(self, request, write) -> models.Model:
        """Save a validated change of an existing row (only its fields) and return it."""
        return write.save()


class SaveMixin:
    @event
    def save(self, request) -> dict[str, Any]:
        """``create`` when ``data`` has no ``id``, ``update`` otherwise."""
        if request.data.get("id") is None:
            data = {key: value for key, value in request.data.items() if key != "id"}
            return self.create(request.with_message(replace(request.message, data=data)))
        return self.update(request)


class DeleteMixin:
    @event
    def delete(self, request) -> dict[str, Any]:
        """``{"id": pk}`` → ``{"success": true, "id": pk}``."""
        obj = self.get_object(request)
        pk = obj.pk
        self.perform_delete(request, obj)
        return {"success": True, "id": self.get_serializer().serialize_pk(pk)}

    def perform_delete(self, request, obj: models.Model) -> None:
        obj.delete()

"""DRF-style permission classes: ``has_permission(request, binding)`` for every
event and ``has_object_permission(request, binding, obj)`` for events that
touch a row. Classes combine with ``&``, ``|`` and ``~``.
"""

from __future__ import annotations

import logging

from django.db import models

from syncbind._bindings.request import effective_action

logger = logging.getLogger("syncbind")

READ_ACTIONS = frozenset({"retrieve", "list", "search", "subscribe", "unsubscribe"})


class _Operand:
    """Combinable: what ``PermA & PermB`` and friends are built from."""

    def __and__(self, other):
        return _Combined(_And, self, other)

    def __or__(self, other):
        return _Combined(_Or, self, other)

    def __rand__(self, other):
        return _Combined(_And, other, self)

    def __ror__(self, other):
        return _Combined(_Or, other, self)

    def __invert__(self):
        return _Combined(_Not, self)


class _PermissionMeta(_Operand, type):
    pass


class _Combined(_Operand):
    """A recipe for a combined permission; calling it makes the instance."""

    def __init__(self, kind, *operands):
        self.kind = kind
        self.operands = operands

    def __call__(self, *args, **kwargs):
        return self.kind(*(operand(*args, **kwargs) for operand in self.operands))


class BasePermission(metaclass=_PermissionMeta):
    """Grant everything; subclasses restrict. ``message`` overrides the error text."""

    message: str | None = None

    def has_permission(self, request, binding) -> bool:
        return True

    def has_object_permission(self, request, binding, obj) -> bool:
        return True


class _And(BasePermission):
    def __init__(self, first, second):
        self.first, self.second = first, second

    def has_permission(self, request, binding):
        return self.first.has_permission(request, binding) and self.second.has_permission(
            request, binding
        )

    def has_object_permission(self, request, binding, obj):
        return self.first.has_object_permission(
            request, binding, obj
        ) and self.second.has_object_permission(request, binding, obj)


class _Or(BasePermission):
    def __init__(self, first, second):
        self.first, self.second = first, second

    def has_permission(self, request, binding):
        return self.first.has_permission(request, binding) or self.second.has_permission(
            request, binding
        )

    def has_object_permission(self, request, binding, obj):
        # An operand grants the object only if it also granted the event.
        return any(
            operand.has_permission(request, binding)
            and operand.has_object_permission(request, binding, obj)
            for operand in (self.first, self.second)
        )


class _Not(BasePermission):
    def __init__(self, operand):
        self.operand = operand

    def has_permission(self, request, binding):
        return not self.operand.has_permission(request, binding)

    def has_object_permission(self, request, binding, obj):
        return not self.operand.has_object_permission(request, binding, obj)


class AllowAny(BasePermission):
    """Everyone, including anonymous connections (if they are allowed at all)."""


class IsAuthenticated(BasePermission):
    def has_permission(self, request, binding):
        return bool(request.user and request.user.is_authenticated)


class IsAdminUser(BasePermission):
    def has_permission(self, request, binding):
        return bool(request.user and request.user.is_staff)


class DjangoModelPermissions(BasePermission):
    """Django's model permissions, decided by the action (never by a transport's method):

    ============================================  ==========================
    retrieve, list, search, subscribe             ``view``
    unsubscribe                                   none
    create                                        ``add``
    update                                        ``change``
    save                                          ``change`` with an ``id``, else ``add``
    delete                                        ``delete``
    a custom event                                ``perms_map["*"]``: ``change``
    ============================================  ==========================

    ``perms_map`` keys are action names (``"*"`` is the fallback). The model is
    the binding's ``get_model()``, else the model of its ``get_queryset()`` (as
    DRF reads a view's queryset); a binding naming neither is refused to
    everyone, superusers included, with a warning in the log. Superusers pass
    otherwise; anonymous users never do.
    """

    perms_map: dict[str, list[str]] = {
        "retrieve": ["%(app_label)s.view_%(model_name)s"],
        "list": ["%(app_label)s.view_%(model_name)s"],
        "search": ["%(app_label)s.view_%(model_name)s"],
        "subscribe": ["%(app_label)s.view_%(model_name)s"],
        "unsubscribe": [],
        "create": ["%(app_label)s.add_%(model_name)s"],
        "update": ["%(app_label)s.change_%(model_name)s"],
        "delete": ["%(app_label)s.delete_%(model_name)s"],
        "*": ["%(app_label)s.change_%(model_name)s"],
    }
    authenticated_users_only = True

    def get_required_permissions(self, action: str, request, model) -> list[str]:
        templates = self.perms_map.get(effective_action(action, request.data), self.perms_map["*"])
        names = {"app_label": model._meta.app_label, "model_name": model._meta.model_name}
        return [template % names for template in templates]

    def get_model(self, binding) -> type[models.Model] | None:
        """The model whose permissions apply (None: the binding names none)."""
        try:
            return binding.get_model()
        except TypeError:  # neither model nor queryset: ask get_queryset(), as DRF does
            pass
        try:
            queryset = binding.get_queryset()
        except TypeError:  # the default get_queryset() needs get_model()
            return None
        return queryset.model if isinstance(queryset, models.QuerySet) else None

    def has_permission(self, request, binding) -> bool:
        user = request.user
        if not user or (not user.is_authenticated and self.authenticated_users_only):
            return False
        model = self.get_model(binding)
        if model is None:
            logger.warning(
                "%s refused %s: %s.%s names no model (set model or queryset, or "
                "permission_classes).",
                type(self).__name__,
                request.event,
                type(binding).__module__,
                type(binding).__qualname__,
            )
            return False
        return user.has_perms(self.get_required_permissions(binding.action, request, model))


class DjangoModelPermissionsOrAnonReadOnly(DjangoModelPermissions):
    """As DjangoModelPermissions, but anonymous users may read (retrieve/list/search)."""

    authenticated_users_only = False

    def has_permission(self, request, binding) -> bool:
        if not request.user.is_authenticated:
            return binding.action in READ_ACTIONS
        return super().has_permission(request, binding)

"""What a binding does for lists and searches: filters, search, ordering, pages.

Filters go through a django-filter FilterSet (``filterset_class``, or one
built from ``filterset_fields``), search through ``search_fields``, ordering
through ``ordering_fields`` (:mod:`syncbind.filters`); a page is read as
:func:`syncbind._reads.compiler.page_read` compiles it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from django.db import models

from syncbind import filters, pagination
from syncbind._reads import compiler, execution
from syncbind._wire import parameters
from syncbind.settings import api_settings

if TYPE_CHECKING:
    # The parts of a binding call each other's hooks: see syncbind._bindings.surface.
    from syncbind._bindings.surface import Binding
else:
    Binding = object


class ListingMixin(Binding):
    """The list and search policy of a binding (part of ``BindingBase``)."""

    filterset_fields: ClassVar[Any] = None
    filterset_class: ClassVar[Any] = None
    search_fields: ClassVar[Any] = ()
    ordering_fields: ClassVar[Any] = ()
    ordering: ClassVar[Any] = None
    page_size: ClassVar[int | None] = None
    _filterset: ClassVar[Any] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._filterset = None  # a subclass never reuses its parent's

    def get_filterset_class(self):
        """``filterset_class``, or a FilterSet built from ``filterset_fields``, or None."""
        if self.filterset_class is not None:
            return self.filterset_class
        cls = type(self)
        if cls._filterset is None and self.filterset_fields:
            cls._filterset = filters.build_filterset_class(self.get_model(), self.filterset_fields)
        return cls._filterset

    def get_search_fields(self) -> list[str]:
        return list(self.search_fields)

    def get_ordering_fields(self) -> list[str]:
        return list(self.ordering_fields)

    def get_default_ordering(self) -> list[str]:
        ordering = self.ordering or self.get_model()._meta.ordering or ["pk"]
        return [ordering] if isinstance(ordering, str) else list(ordering)

    def filter_queryset(self, queryset: models.QuerySet) -> models.QuerySet:
        """Apply the request's ``filters``, ``query`` (search only) and ``ordering``."""
        request = self.request
        data = request.data
        queryset = filters.apply_filters(
            self.get_filterset_class(),
            queryset,
            data.get("filters"),
            request,
            related=lambda choices: self.get_related_queryset(None, choices),
        )
        if request.action == "search" or data.get("query"):
            queryset = filters.apply_search(queryset, self.get_search_fields(), data.get("query"))
        terms = filters.parse_ordering(data.get("ordering"), self.get_ordering_fields())
        return filters.apply_ordering(queryset, terms or self.get_default_ordering())

    def get_page_size(self) -> int:
        return self.page_size or api_settings.DEFAULT_PAGE_SIZE

    def get_page_read(self) -> compiler.PageRead:
        """The compiled read of the page ``request.data`` describes."""
        parameters.check_parameters(self.request.data, parameters.LIST)
        params = pagination.parse_page_params(
            self.request.data, self.get_page_size(), api_settings.MAX_PAGE_SIZE
        )
        queryset = self.read_queryset(self.filter_queryset(self._queryset()))
        return compiler.page_read(queryset, params.page, params.limit)

    def get_page(self) -> dict[str, Any]:
        """The page described by ``request.data``: ``{"page", "limit", "count", "rows"}``."""
        read = self.get_page_read()
        return self.page_data(read, execution.execute_one(read))

    def page_data(
        self, read: compiler.PageRead, result: compiler.PageResult, serialize_many: Any = None
    ) -> dict[str, Any]:
        """The reply data of a page read (for requests and pushes alike)."""
        serialized = (serialize_many or self.get_serializer().serialize_many)(result.rows)
        return {"page": read.page, "limit": read.limit, "count": result.count, "rows": serialized}

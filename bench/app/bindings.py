"""syncbind's contender: the bindings, loaded by syncbind's autodiscovery."""

from django.db.models import Q

from syncbind import SyncBinding, event
from syncbind.permissions import IsAuthenticated

from .models import ITEM_FIELDS, SCOPED_FIELDS, Item, ScopedItem
from .rows import slow_query


class ItemBinding(SyncBinding):
    model = Item
    fields = ITEM_FIELDS
    filterset_fields = {"category": ["exact"]}

    @event(atomic=False)
    def slow(self, request):
        return slow_query()


class ScopedItemBinding(SyncBinding):
    """The scoped fan-out: each user sees their own rows and the public ones."""

    model = ScopedItem
    fields = SCOPED_FIELDS
    filterset_fields = {"public": ["exact"], "owner": ["exact"]}
    permission_classes = [IsAuthenticated]

    def get_queryset(self):
        user = self.request.user
        return super().get_queryset().filter(Q(owner=user) | Q(public=True))

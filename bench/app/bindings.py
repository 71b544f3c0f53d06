"""syncbind's contender: one binding, loaded by syncbind's autodiscovery."""

from syncbind import SyncBinding, event

from .models import ITEM_FIELDS, Item
from .rows import slow_query


class ItemBinding(SyncBinding):
    model = Item
    fields = ITEM_FIELDS
    filter_fields = {"category": ["exact"]}

    @event(atomic=False)
    def slow(self, request):
        return slow_query()

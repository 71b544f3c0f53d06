"""djangochannelsrestframework's two ways to follow changes.

- ``subscribe_instance`` (ObserverModelInstanceMixin): one row.
- ``subscribe_category``: a ``model_observer`` grouped by category, its
  documented way to follow a filtered set (it pushes the changed row, not the
  page).

On ``/ws/scoped/`` (``scoped_consumer()``), the scoped fan-out's reference:
``subscribe_instance`` on ``ScopedItem`` with a per-user ``get_queryset``, so a
user subscribes to, and is pushed, only rows it may see. DCRF has no per-user
filtered list subscription, so it takes only the scenario's row cases.
"""

from django.db.models import Q
from djangochannelsrestframework import permissions
from djangochannelsrestframework.decorators import action
from djangochannelsrestframework.generics import GenericAsyncAPIConsumer
from djangochannelsrestframework.observer import model_observer
from djangochannelsrestframework.observer.generics import ObserverModelInstanceMixin
from rest_framework import serializers

from bench.app.models import SCOPED_FIELDS, Item, ScopedItem
from bench.contenders.dcrf import ItemSerializer


class ItemObserverConsumer(ObserverModelInstanceMixin, GenericAsyncAPIConsumer):
    queryset = Item.objects.all()
    serializer_class = ItemSerializer
    permission_classes = [permissions.IsAuthenticated]

    @model_observer(Item, serializer_class=ItemSerializer)
    async def category_items(
        self, message, observer=None, action=None, subscribing_request_ids=(), **kwargs
    ):
        for request_id in subscribing_request_ids:
            await self.reply(data=message, action=action, request_id=request_id)

    @category_items.groups_for_signal
    def category_items(self, instance, **kwargs):
        yield f"category-{instance.category_id}"

    @category_items.groups_for_consumer
    def category_items(self, category=None, **kwargs):
        if category is not None:
            yield f"category-{category}"

    @action()
    async def subscribe_category(self, category, request_id, **kwargs):
        await self.category_items.subscribe(category=category, request_id=request_id)
        return {"category": category}, 200


class ScopedItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = ScopedItem
        fields = SCOPED_FIELDS


class ScopedItemObserverConsumer(ObserverModelInstanceMixin, GenericAsyncAPIConsumer):
    queryset = ScopedItem.objects.all()
    serializer_class = ScopedItemSerializer
    permission_classes = [permissions.IsAuthenticated]

    def get_queryset(self, **kwargs):
        user = self.scope["user"]
        return super().get_queryset(**kwargs).filter(Q(owner=user) | Q(public=True))


def consumer():
    return ItemObserverConsumer.as_asgi()


def scoped_consumer():
    return ScopedItemObserverConsumer.as_asgi()

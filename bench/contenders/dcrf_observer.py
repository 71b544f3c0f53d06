"""djangochannelsrestframework's two ways to follow changes.

- ``subscribe_instance`` (ObserverModelInstanceMixin): one row.
- ``subscribe_category``: a ``model_observer`` grouped by category, its
  documented way to follow a filtered set (it pushes the changed row, not the
  page).
"""

from djangochannelsrestframework import permissions
from djangochannelsrestframework.decorators import action
from djangochannelsrestframework.generics import GenericAsyncAPIConsumer
from djangochannelsrestframework.observer import model_observer
from djangochannelsrestframework.observer.generics import ObserverModelInstanceMixin

from bench.app.models import Item
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


def consumer():
    return ItemObserverConsumer.as_asgi()

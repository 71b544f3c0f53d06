"""channels-binding 1.9.8 (the package syncbind replaces), used as its README shows.

Its async bindings call the ORM on the event loop, which is why its server
runs with ``DJANGO_ALLOW_ASYNC_UNSAFE=true`` (its settings module sets it
itself on import). ``list`` is its ``search`` event (its ``list`` event cannot
be called: the method's signature does not match how requests call it).
"""

from channels_binding.bindings import AsyncBinding
from channels_binding.consumers import AsyncConsumer
from channels_binding.utils import bind

from bench.app.models import Item
from bench.app.rows import item_row, slow_query


class ItemBinding(AsyncBinding):
    model = Item
    stream = "benchapp.Item"

    async def serialize_retrieve(self, request, instance):
        return item_row(instance)

    @bind("slow")
    async def slow(self, request):
        await request.reflect(slow_query())


def consumer():
    return AsyncConsumer.as_asgi()

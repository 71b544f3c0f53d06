"""What a developer writes by hand: a Channels JsonWebsocketConsumer doing the same queries."""

import json

from channels.generic.websocket import JsonWebsocketConsumer
from django.core.serializers.json import DjangoJSONEncoder

from bench.app.models import Item
from bench.app.rows import item_row, page_bounds, slow_query


class PlainConsumer(JsonWebsocketConsumer):
    def connect(self):
        if self.scope["user"].is_authenticated:
            self.accept()
        else:
            self.close()

    def receive_json(self, content, **kwargs):
        action = content.get("action")
        if action == "retrieve":
            data = item_row(Item.objects.get(pk=content["id"]))
        elif action == "list":
            items = Item.objects.order_by("id")
            data = {
                "count": items.count(),
                "rows": [item_row(item) for item in items[page_bounds(content.get("page"))]],
            }
        elif action == "slow":
            data = slow_query()
        else:
            data = None
        self.send_json({"action": action, "request_id": content.get("request_id"), "data": data})

    @classmethod
    def encode_json(cls, content):
        return json.dumps(content, cls=DjangoJSONEncoder)


def consumer():
    return PlainConsumer.as_asgi()

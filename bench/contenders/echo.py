"""The ceiling of the stack: every frame sent straight back, no database."""

from channels.generic.websocket import AsyncWebsocketConsumer


class EchoConsumer(AsyncWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=text_data)


def consumer():
    return EchoConsumer.as_asgi()

from syncbind import AsyncConsumer


def consumer():
    return AsyncConsumer.as_asgi()

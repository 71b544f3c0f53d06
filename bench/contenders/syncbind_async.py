from syncbind import AsyncBindingConsumer


def consumer():
    return AsyncBindingConsumer.as_asgi()

from syncbind import SyncConsumer


def consumer():
    return SyncConsumer.as_asgi()

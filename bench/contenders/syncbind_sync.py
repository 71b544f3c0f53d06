from syncbind import BindingConsumer


def consumer():
    return BindingConsumer.as_asgi()

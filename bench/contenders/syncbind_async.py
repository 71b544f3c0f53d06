from syncbind import AsyncBindingConsumer


def consumer():
    return AsyncBindingConsumer.as_asgi()


def auth_stack(inner):
    """syncbind's session-and-user stack: the user is read in its worker pool."""
    from syncbind.middleware import AuthMiddlewareStack

    return AuthMiddlewareStack(inner)

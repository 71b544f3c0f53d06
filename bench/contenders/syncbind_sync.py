from syncbind import BindingConsumer


def consumer():
    return BindingConsumer.as_asgi()


def auth_stack(inner):
    """syncbind's session-and-user stack: the user is read in its worker pool."""
    from syncbind.middleware import AuthMiddlewareStack

    return AuthMiddlewareStack(inner)

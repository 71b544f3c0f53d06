from django.shortcuts import render


def index(request):
    """The one page: a login link, or a table filled over the WebSocket."""
    return render(request, "shop/index.html")

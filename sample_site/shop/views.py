"""The shop's one page."""

from django.shortcuts import render


def index(request):
    """The one page: a login link, or a table filled over the WebSocket."""
    # The delete button only for users the server lets delete (DjangoModelPermissions
    # asks Django's delete permission); the server still decides every request.
    can_delete = request.user.has_perm("shop.delete_product")
    return render(request, "shop/index.html", {"can_delete": can_delete})

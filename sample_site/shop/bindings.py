"""The shop's streams: ``shop.Category``, ``shop.Product`` and ``shop.Note``.

syncbind imports this module at startup and registers every binding in it.
Permissions are the project default (``DjangoModelPermissions``) unless a
binding says otherwise.
"""

from syncbind import SyncBinding, event
from syncbind.exceptions import ValidationError
from syncbind.permissions import IsAuthenticated

from .models import Category, Note, Product


class CategoryBinding(SyncBinding):
    model = Category
    fields = ["id", "name"]
    search_fields = ["name"]
    ordering_fields = ["name"]

    def perform_delete(self, obj):
        # Products protect their category; say so instead of failing with a server error.
        if obj.products.exists():
            raise ValidationError({"__all__": ["This category still has products."]})
        obj.delete()


class ProductBinding(SyncBinding):
    model = Product
    # category__name and owner__username are read-only related fields, joined in the
    # same query; a renamed category is pushed to the pages that show it.
    fields = [
        "id",
        "name",
        "price",
        "category",
        "category__name",
        "owner",
        "owner__username",
        "in_stock",
        "created",
    ]
    read_only_fields = ["owner"]
    filterset_fields = {
        "price": ["exact", "lt", "gt"],
        "category": ["exact"],
        "name": ["icontains"],
    }
    search_fields = ["name", "category__name"]
    ordering_fields = ["name", "price"]

    def perform_create(self, write):
        return write.save(owner=self.request.user)

    @event
    def restock(self, request):
        """``shop.Product.restock`` with ``{"id": pk}``: mark the product in stock again.

        Needs ``change_product``, like every custom event under DjangoModelPermissions.
        """
        product = self.get_object()
        if not product.in_stock:
            product.in_stock = True
            product.save(update_fields=["in_stock"])
        return self.write_result(product)


class NoteBinding(SyncBinding):
    """Every signed-in user may keep notes, and sees only their own."""

    model = Note
    fields = ["id", "text", "created"]
    permission_classes = [IsAuthenticated]

    def get_queryset(self):
        return super().get_queryset().filter(owner=self.request.user)

    def perform_create(self, write):
        return write.save(owner=self.request.user)

"""What the test bindings send for a row, computed independently of syncbind's serializer."""


def product_row(product):
    """The serialized form of a Product as ProductBinding sends it (reads it fresh)."""
    product.refresh_from_db()
    return {
        "id": product.pk,
        "name": product.name,
        "price": f"{product.price:.2f}",
        "category": product.category_id,
        "owner": product.owner_id,
        "tags": sorted(product.tags.values_list("pk", flat=True)),
        "in_stock": product.in_stock,
        "status": product.status,
        "stock": product.stock,
        "sku": str(product.sku),
        "created": product.created.isoformat().replace("+00:00", "Z"),
    }

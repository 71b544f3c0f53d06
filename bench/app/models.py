"""The models: items with a category (every contender serves them), and per-user scoped items."""

from django.conf import settings
from django.db import models


class Category(models.Model):
    name = models.CharField(max_length=50)

    class Meta:
        app_label = "benchapp"


class Item(models.Model):
    name = models.CharField(max_length=100)
    price = models.DecimalField(max_digits=8, decimal_places=2)
    quantity = models.IntegerField(default=0)
    category = models.ForeignKey(Category, on_delete=models.CASCADE, related_name="items")
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "benchapp"
        ordering = ["id"]


# The serialized fields, the same for every contender.
ITEM_FIELDS = ["id", "name", "price", "quantity", "category", "updated"]


class ScopedItem(models.Model):
    """Rows each user sees only some of: their own, and the public ones (the scoped fan-out)."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="scoped_items"
    )
    # Indexed, as an app whose pages filter on it would index it.
    public = models.BooleanField(default=False, db_index=True)
    name = models.CharField(max_length=100)
    price = models.DecimalField(max_digits=8, decimal_places=2)
    quantity = models.IntegerField(default=0)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "benchapp"
        ordering = ["id"]


SCOPED_FIELDS = ["id", "name", "price", "quantity", "owner", "public", "updated"]

"""``manage.py demo_setup``: the demo users and sample rows. Safe to run again."""

from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand
from django.db import transaction

from shop.models import Category, Product

# Category -> [(product name, price, in stock)]
CATALOGUE = {
    "Books": [
        ("Pocket Atlas", "12.50", True),
        ("Field Guide to Birds", "27.00", True),
        ("Bread Baking Basics", "19.99", True),
        ("The Patient Gardener", "14.00", True),
        ("Knots and Splices", "9.50", True),
        ("Night Sky Almanac", "17.25", True),
        ("Soup Every Day", "23.00", True),
        ("Tiny Houses", "31.00", False),
        ("Map Reading 101", "8.00", True),
        ("Slow Travel", "16.80", True),
    ],
    "Garden": [
        ("Watering Can", "16.00", True),
        ("Pruning Shears", "22.75", True),
        ("Seed Tray", "4.50", True),
        ("Garden Gloves", "8.99", True),
        ("Hose Reel", "54.00", False),
        ("Bird Feeder", "19.50", True),
        ("Trowel", "6.75", True),
        ("Plant Labels", "3.20", True),
        ("Compost Bin", "64.00", True),
        ("Rain Gauge", "5.60", True),
    ],
    "Kitchen": [
        ("Chef's Knife", "49.00", True),
        ("Cutting Board", "18.50", True),
        ("Cast Iron Skillet", "39.90", True),
        ("Wooden Spoon Set", "9.99", True),
        ("Espresso Cups", "24.00", True),
        ("Salad Bowl", "21.00", True),
        ("Tea Kettle", "34.50", False),
        ("Measuring Cups", "7.25", True),
        ("Pepper Mill", "15.00", True),
        ("Oven Mitts", "11.40", True),
    ],
}

# alice may read the categories (the product form's choices) and view, add and change
# products, but not delete them.
ALICE_PERMISSIONS = ["view_category", "view_product", "add_product", "change_product"]


class Command(BaseCommand):
    help = (
        "Create the demo users (demo/demo, a superuser; alice/alice, who may view, add and "
        "change products, and read categories) and the sample categories and products. "
        "Existing rows are kept."
    )

    @transaction.atomic
    def handle(self, *args, **options):
        demo = self.user("demo", is_staff=True, is_superuser=True)
        alice = self.user("alice", is_staff=False, is_superuser=False)
        alice.user_permissions.add(
            *Permission.objects.filter(
                content_type__app_label="shop", codename__in=ALICE_PERMISSIONS
            )
        )

        created = 0
        for category_name, products in CATALOGUE.items():
            category, _ = Category.objects.get_or_create(name=category_name)
            for name, price, in_stock in products:
                _, new = Product.objects.get_or_create(
                    name=name,
                    category=category,
                    defaults={"price": Decimal(price), "in_stock": in_stock, "owner": demo},
                )
                created += new
        self.stdout.write(
            f"Users: demo/demo (superuser), alice/alice (view/add/change products, view "
            f"categories). "
            f"Products: {created} created, {Product.objects.count()} in all."
        )

    def user(self, username, **flags):
        """Get or create ``username`` with password ``username`` and the given flags."""
        user, created = get_user_model().objects.get_or_create(username=username, defaults=flags)
        changed = created
        for name, value in flags.items():
            if getattr(user, name) != value:
                setattr(user, name, value)
                changed = True
        if created or not user.check_password(username):
            user.set_password(username)
            changed = True
        if changed:
            user.save()
        return user

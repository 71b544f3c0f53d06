"""``manage.py demo_edit``: change a product from outside the browser, as another program
would, and watch the open pages update.

By default it writes through the running server's HTTP API (``/api/``,
TokenAuthentication as the demo user). ``--direct`` saves the product here, in
this process, as a shell or a cron job would: the open pages show that too,
because ``migrate`` installed syncbind's triggers on the demo's SQLite file and
the server reads the changes they record (docs/subscriptions.md, "Which changes").
"""

import json
import urllib.error
import urllib.request
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from shop.models import Product
from syncbind.authentication import make_token


class Command(BaseCommand):
    help = (
        "Raise a product's price by 1.00 through the running demo server's HTTP API "
        "(--direct: by saving it here)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--product", default="Trowel", help="the product's name")
        parser.add_argument("--price", type=Decimal, help="the new price (default: +1.00)")
        parser.add_argument("--port", type=int, default=8000, help="the demo server's port")
        parser.add_argument(
            "--direct",
            action="store_true",
            help="save in this process instead, as any other program would (pushed all the same)",
        )

    def handle(self, *args, product, price, port, direct, **options):
        row = Product.objects.filter(name=product).first()
        if row is None:
            raise CommandError(f"No product is named {product!r} (run manage.py demo_setup).")
        old_price = row.price
        new_price = price if price is not None else old_price + 1
        if direct:
            row.price = new_price
            row.save(update_fields=["price"])
        else:
            self.patch(port, row.pk, {"price": str(new_price)})
        self.stdout.write(f"{row.name}: {old_price} -> {new_price}; open pages show it now.")

    def patch(self, port, pk, fields):
        demo = get_user_model().objects.get(username="demo")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/shop.Product/{pk}/",
            data=json.dumps(fields).encode(),
            method="PATCH",
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Token {make_token(demo)}",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                json.load(response)
        except urllib.error.HTTPError as error:
            raise CommandError(f"The server refused the edit: {error.read().decode()}") from error
        except OSError as error:
            raise CommandError(
                f"No demo server answers on port {port} ({error}): start it with make demo, "
                "or give the port it runs on: make demo-edit PORT=8001"
            ) from error

"""``manage.py demo_edit``: change a product from outside the browser, as another program
would, and watch the open pages update.

The demo runs on the in-memory channel layer, which does not cross processes: a
save made here, in another process, would reach no page. So this command writes
through the running server's HTTP API (``/api/``, TokenAuthentication as the
demo user), and the server pushes the change. With channels-redis
(``make demo REDIS_URL=redis://127.0.0.1:6379/0``) a plain ``product.save()`` from
any process, a shell included, is pushed too: ``--direct`` does that.
"""

import json
import urllib.error
import urllib.request
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from shop.models import Product
from syncbind.authentication import make_token


class Command(BaseCommand):
    help = "Raise a product's price by 1.00 through the running demo server's HTTP API."

    def add_arguments(self, parser):
        parser.add_argument("--product", default="Trowel", help="the product's name")
        parser.add_argument("--price", type=Decimal, help="the new price (default: +1.00)")
        parser.add_argument("--port", type=int, default=8000, help="the demo server's port")
        parser.add_argument(
            "--direct",
            action="store_true",
            help="save in this process instead (reaches the pages only over channels-redis)",
        )

    def handle(self, *args, product, price, port, direct, **options):
        row = Product.objects.filter(name=product).first()
        if row is None:
            raise CommandError(f"No product is named {product!r} (run manage.py demo_setup).")
        old_price = row.price
        new_price = price if price is not None else old_price + 1
        shown = "open pages show it now."
        if direct:
            if "InMemory" in settings.CHANNEL_LAYERS["default"]["BACKEND"]:
                self.stderr.write(
                    "The in-memory layer does not cross processes: this save reaches no page. "
                    "Run the demo with REDIS_URL set, or leave out --direct."
                )
                shown = "saved here only: no open page shows it."
            row.price = new_price
            row.save(update_fields=["price"])
        else:
            self.patch(port, row.pk, {"price": str(new_price)})
        self.stdout.write(f"{row.name}: {old_price} -> {new_price}; {shown}")

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

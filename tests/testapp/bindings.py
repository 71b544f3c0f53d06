import threading
import time

from django.contrib.auth import get_user_model

from syncbind import SyncBinding, event
from syncbind.exceptions import NotFound, ValidationError
from syncbind.permissions import AllowAny, IsAuthenticated

from .models import Category, Label, Note, Product, Project, Task

# Opened by SLEEPY_PARTIES handlers running at the same time (see tests/test_writes.py).
SLEEPY_PARTIES = 8
sleepy_barrier = threading.Barrier(SLEEPY_PARTIES, timeout=10)


class ProductBinding(SyncBinding):
    model = Product
    fields = [
        "id",
        "name",
        "price",
        "category",
        "owner",
        "tags",
        "in_stock",
        "status",
        "stock",
        "sku",
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
        product = self.get_object()
        product.stock += int(request.data.get("amount", 1))
        product.save(update_fields=["stock"])
        return {"success": True, "stock": product.stock}

    @event("price_range", atomic=False)
    def price_range(self, request):
        prices = list(self.get_queryset().values_list("price", flat=True))
        return {"min": min(prices, default=None), "max": max(prices, default=None)}

    @event(permission_classes=[AllowAny], atomic=False)
    def ping(self, request):
        return {"pong": True, "user": request.user.get_username() or None}

    @event(atomic=False)
    def rendezvous(self, request):
        # Returns only once SLEEPY_PARTIES handlers wait here at the same time.
        sleepy_barrier.wait()
        return {"met": True}

    @event(atomic=False)
    def nap(self, request):
        time.sleep(float(request.data.get("seconds", 0.2)))
        return {"slept": True}

    @event
    def explode(self, request):
        Category.objects.create(name="half-written")
        raise RuntimeError("secret internal detail /etc/passwd")

    @event(atomic=False)
    def blob(self, request):
        # A large reply, for tests of clients that stop reading.
        return {"blob": "x" * min(int(request.data.get("size", 1000)), 1_000_000)}

    @event(atomic=False)
    def missing(self, request):
        raise NotFound("No such widget.")

    @event(atomic=False)
    def refuse(self, request):
        raise ValidationError({"amount": ["Too much."]})

    @event(atomic=False)
    def refuse_plainly(self, request):
        raise ValidationError("Too short.")

    @event(atomic=False)
    async def async_echo(self, request):
        return {"echo": request.data.get("value")}

    @event
    def unencodable(self, request):
        # A common mistake: a reply JSON cannot carry, returned after a write.
        category = Category.objects.create(name="written before the reply")
        return category if request.data.get("kind") == "instance" else {"value": object()}


class CategoryBinding(SyncBinding):
    model = Category
    fields = "__all__"
    search_fields = ["name"]
    ordering_fields = ["name"]


class NoteBinding(SyncBinding):
    model = Note
    fields = ["id", "text", "owner"]
    read_only_fields = ["owner"]
    permission_classes = [IsAuthenticated]

    def get_queryset(self):
        return super().get_queryset().filter(owner=self.request.user)

    def perform_create(self, write):
        return write.save(owner=self.request.user)


class UserBinding(SyncBinding):
    # The stream of the original project's examples ("auth.User.search").
    stream = "auth.User"
    model = get_user_model()
    fields = ["id", "username", "first_name", "last_name", "email"]
    search_fields = ["username", "first_name", "last_name", "email"]
    ordering_fields = ["username"]


class OwnedBinding(SyncBinding):
    """Rows belong to one user: each user reads and writes only their own."""

    abstract = True
    permission_classes = [IsAuthenticated]
    read_only_fields = ["owner"]

    def get_queryset(self):
        return super().get_queryset().filter(owner=self.request.user)

    def perform_create(self, write):
        return write.save(owner=self.request.user)


class ProjectBinding(OwnedBinding):
    model = Project
    fields = ["id", "name", "owner"]


class LabelBinding(OwnedBinding):
    model = Label
    fields = ["id", "name", "owner"]


class TaskBinding(OwnedBinding):
    model = Task
    fields = [
        "id",
        "owner",
        "project",
        "labels",
        "slug",
        "title",
        "priority",
        "due",
        "estimate",
        "meta",
        "done",
        "created",
        "updated",
    ]
    read_only_fields = ["owner", "created", "updated"]
    filterset_fields = {
        "priority": ["exact", "in", "lt"],
        "project": ["exact"],
        "title": ["icontains"],
        "estimate": ["lt"],
        "due": ["lt"],
    }
    search_fields = ["title", "labels__name"]
    ordering_fields = ["title", "priority", "due"]


class ListScopedBinding(SyncBinding):
    """Rows belong to one user, scoped in ``filter_queryset`` only (``get_queryset`` is
    every row): a list shows each user their own, a retrieve of another's is found."""

    abstract = True
    permission_classes = [IsAuthenticated]
    read_only_fields = ["owner"]

    def filter_queryset(self, queryset):
        return super().filter_queryset(queryset).filter(owner=self.request.user)

    def perform_create(self, write):
        return write.save(owner=self.request.user)


class ListScopedProjectBinding(ListScopedBinding):
    """Bound in place of ProjectBinding by tests (``override_bindings``), never registered."""

    abstract = True
    model = Project
    fields = ["id", "name", "owner"]


class ListScopedLabelBinding(ListScopedBinding):
    """Bound in place of LabelBinding by tests (``override_bindings``), never registered."""

    abstract = True
    model = Label
    fields = ["id", "name", "owner"]

import uuid

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import models


class User(AbstractUser):
    """The test project's user: any username, spaces included, as in the original
    channels-binding example ("Changed Username")."""

    username = models.CharField(max_length=150, unique=True)


class UUIDUser(AbstractBaseUser):
    """A user whose primary key is a UUID. AUTH_USER_MODEL cannot change per test: the
    tests of user keys on channel-layer messages connect as one of these."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    username = models.CharField(max_length=150, unique=True)
    is_active = models.BooleanField(default=True)

    USERNAME_FIELD = "username"


class Category(models.Model):
    name = models.CharField(max_length=40, unique=True)

    def __str__(self):
        return self.name


class Tag(models.Model):
    name = models.CharField(max_length=20)


class Product(models.Model):
    STATUS_CHOICES = [("draft", "Draft"), ("live", "Live")]

    name = models.CharField(max_length=50)
    price = models.DecimalField(max_digits=8, decimal_places=2)
    category = models.ForeignKey(Category, on_delete=models.CASCADE, related_name="products")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    tags = models.ManyToManyField(Tag, blank=True)
    in_stock = models.BooleanField(default=True)
    status = models.CharField(max_length=10, choices=STATUS_CHOICES, default="draft")
    stock = models.IntegerField(default=0)
    sku = models.UUIDField(default=uuid.uuid4, editable=False)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def clean(self):
        if self.name and self.name.lower() == "forbidden":
            raise ValidationError({"name": "This name is not allowed."})


class Note(models.Model):
    """A row that belongs to one user; its binding shows each user only their own."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notes"
    )
    text = models.CharField(max_length=200)


class Project(models.Model):
    """Owner-scoped: each user sees only their own projects (ProjectBinding)."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="projects"
    )
    name = models.CharField(max_length=60)

    def __str__(self):
        return self.name


class Label(models.Model):
    """Owner-scoped labels, attached to tasks through a many-to-many field."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="labels"
    )
    name = models.CharField(max_length=40)


class Task(models.Model):
    """An owner-scoped row with the field types hostile input aims at."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tasks"
    )
    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.CASCADE)
    labels = models.ManyToManyField(Label, blank=True)
    slug = models.SlugField(max_length=60, unique=True)
    title = models.CharField(max_length=200)
    priority = models.IntegerField(default=0)
    due = models.DateTimeField(null=True, blank=True)
    estimate = models.DecimalField(max_digits=36, decimal_places=18, default=0)
    meta = models.JSONField(default=dict)
    done = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

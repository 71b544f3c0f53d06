"""factory-boy factories for every test model."""

from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from tests.pkgapp.models import Thing
from tests.testapp.models import Category, Label, Note, Product, Project, Tag, Task


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n:04d}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("pw")

    @factory.post_generation
    def perms(self, create, extracted, **kwargs):
        """``UserFactory(perms=["testapp.view_product"])`` grants model permissions."""
        if not create or not extracted:
            return
        for perm in extracted:
            app_label, codename = perm.split(".")
            self.user_permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )


class SuperUserFactory(UserFactory):
    is_superuser = True
    is_staff = True


class CategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Category

    name = factory.Sequence(lambda n: f"category {n}")


class TagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tag

    name = factory.Sequence(lambda n: f"tag{n}")


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"product {n:03d}")
    price = factory.Sequence(lambda n: Decimal("1.00") + n)
    category = factory.SubFactory(CategoryFactory)

    @factory.post_generation
    def tags(self, create, extracted, **kwargs):
        if create and extracted:
            self.tags.set(extracted)


class NoteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Note

    owner = factory.SubFactory(UserFactory)
    text = factory.Sequence(lambda n: f"note {n}")


class ThingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Thing

    label = factory.Sequence(lambda n: f"thing {n}")


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"project {n}")


class LabelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Label

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"label {n}")


class TaskFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Task
        skip_postgeneration_save = True

    owner = factory.SubFactory(UserFactory)
    project = factory.SubFactory(ProjectFactory, owner=factory.SelfAttribute("..owner"))
    slug = factory.Sequence(lambda n: f"task-{n}")
    title = factory.Sequence(lambda n: f"task {n}")

    @factory.post_generation
    def labels(self, create, extracted, **kwargs):
        if create and extracted:
            self.labels.set(extracted)

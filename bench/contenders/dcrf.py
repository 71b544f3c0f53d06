"""djangochannelsrestframework: GenericAsyncAPIConsumer with the Retrieve and List mixins.

Written as its documentation shows; ``list`` pages by 25 through
``filter_queryset`` so it returns the same rows as the others.
"""

from djangochannelsrestframework import permissions
from djangochannelsrestframework.decorators import action
from djangochannelsrestframework.generics import GenericAsyncAPIConsumer
from djangochannelsrestframework.mixins import ListModelMixin, RetrieveModelMixin
from rest_framework import serializers

from bench.app.models import ITEM_FIELDS, Item
from bench.app.rows import page_bounds, slow_query


class ItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = Item
        fields = ITEM_FIELDS


class ItemConsumer(RetrieveModelMixin, ListModelMixin, GenericAsyncAPIConsumer):
    queryset = Item.objects.all()
    serializer_class = ItemSerializer
    permission_classes = [permissions.IsAuthenticated]

    def filter_queryset(self, queryset, **kwargs):
        queryset = super().filter_queryset(queryset, **kwargs)
        if kwargs.get("action") == "list":
            return queryset[page_bounds(kwargs.get("page"))]
        return queryset

    @action()
    def slow(self, **kwargs):
        return slow_query(), 200


def consumer():
    return ItemConsumer.as_asgi()

"""DRF-serialized bindings the tests bind with ``override_bindings`` (kept out of
tests/testapp, which must import without DRF installed)."""

from rest_framework import serializers

from syncbind import SyncBinding
from syncbind.permissions import IsAuthenticated
from tests.testapp.models import Task


class TaskSerializer(serializers.ModelSerializer):
    class Meta:
        model = Task
        fields = ["id", "project", "labels", "slug", "title"]


class DRFTaskBinding(SyncBinding):
    """testapp.Task through a DRF serializer: its relations are scoped like native ones."""

    model = Task
    stream = "testapp.DRFTask"
    serializer_class = TaskSerializer
    permission_classes = [IsAuthenticated]

    def perform_create(self, write):
        return write.save(owner=self.request.user)

from syncbind import SyncBinding

from ..models import Thing


class ThingBinding(SyncBinding):
    model = Thing
    fields = ["id", "label"]

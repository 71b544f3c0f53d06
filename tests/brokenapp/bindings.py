"""A bindings module that registers a binding, then fails to import something else."""

from syncbind import SyncBinding
from tests.pkgapp.models import Thing


class HalfRegisteredBinding(SyncBinding):
    model = Thing
    stream = "brokenapp.Thing"
    fields = ["id", "label"]


import a_module_that_does_not_exist  # noqa: E402, F401

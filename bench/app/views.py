"""The harness's HTTP side: query count, memory, the saves the fan-outs measure, and a resync."""

import asyncio
import gc
import json
import os
import time
import tracemalloc

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from . import counter
from .models import Item, ScopedItem

# The lines of a memory profile (``/bench/memory/`` under PYTHONTRACEMALLOC).
ALLOCATION_LINES = 25


def queries(request: HttpRequest) -> JsonResponse:
    """The statements run so far: all, and the change-capture reader's among them; the
    process's CPU seconds and its time in the garbage collector; with ``?statements=1``,
    each statement's text and count too (``BENCH_SQL_DETAIL``)."""
    gc_seconds, gc_full = counter.gc_totals()
    body: dict = {
        "queries": counter.total(),
        "reader": counter.reader(),
        "gc_seconds": gc_seconds,
        "gc_full": gc_full,
        "cpu": time.process_time(),
    }
    if request.GET.get("statements"):
        body["statements"] = counter.statements()
    return JsonResponse(body)


def cpu(request: HttpRequest) -> JsonResponse:
    """CPU seconds the whole server process (every thread) has used so far."""
    return JsonResponse({"cpu": time.process_time()})


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


# The snapshot ``/bench/memory/?mark=1`` took, when tracemalloc traces (PYTHONTRACEMALLOC).
_marked: list[tracemalloc.Snapshot] = []


def memory(request: HttpRequest) -> JsonResponse:
    """The process's resident memory; under PYTHONTRACEMALLOC (a profile, not a
    measurement: tracing costs memory of its own), also where the memory allocated
    since ``?mark=1`` was allocated, the largest lines first."""
    gc.collect()
    body: dict = {"rss": rss_bytes(), "pid": os.getpid()}
    if tracemalloc.is_tracing():
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        if _marked:
            body["allocations"] = {
                by: [
                    {
                        "where": str(stat.traceback[0]),
                        "bytes": stat.size_diff,
                        "blocks": stat.count_diff,
                    }
                    for stat in snapshot.compare_to(_marked[-1], by)[:ALLOCATION_LINES]
                ]
                for by in ("filename", "lineno")
            }
        if request.GET.get("mark"):
            _marked[:] = [snapshot]
    return JsonResponse(body)


@csrf_exempt
def save(request: HttpRequest) -> JsonResponse:
    """POST ``{"id": pk, "name": "..."}``: one ordinary ``save()`` of an item.

    Every contender's observers see the same ``post_save`` a Django view,
    the admin or a management command would send.
    """
    body = json.loads(request.body)
    item = Item.objects.get(pk=body["id"])
    item.name = body["name"]
    item.save()
    return JsonResponse({"saved": item.pk})


@csrf_exempt
def save_scoped(request: HttpRequest) -> JsonResponse:
    """POST ``{"id": pk, "name": "..."}``: one ordinary ``save()`` of a scoped item."""
    body = json.loads(request.body)
    item = ScopedItem.objects.get(pk=body["id"])
    item.name = body["name"]
    item.save()
    return JsonResponse({"saved": item.pk})


# Seconds a resync's evaluations may take before the view gives up on them.
RESYNC_TIMEOUT = 300.0


@csrf_exempt
def resync(request: HttpRequest) -> JsonResponse:
    """POST: what the end of a channel-layer outage does (``Hub.resync()``, which the
    hub's group receive calls once it works again), on every hub of this process; returns
    once everything it queued has been processed, with the seconds that took.

    Bench only: no server exposes this. Triggered over HTTP rather than by stopping
    Redis, which other processes on the machine share.
    """
    from syncbind._live.hub import all_hubs

    hubs = [hub for hub in all_hubs() if hub.key_counts]
    seconds = [
        asyncio.run_coroutine_threadsafe(timed_resync(hub), hub.loop).result(RESYNC_TIMEOUT)
        for hub in hubs
    ]
    return JsonResponse({"hubs": len(hubs), "seconds": sum(seconds)})


async def timed_resync(hub) -> float:
    """On the hub's loop: resync, then wait for a marker put in its lanes after it (a
    marker is acted on once every lane has processed what it held before it, and the
    refresh jobs then running are done); the seconds in between."""
    import uuid

    from syncbind._live import messages

    loop = asyncio.get_running_loop()
    started = loop.time()
    hub.resync()
    name = uuid.uuid4().hex
    done = hub.markers[name] = asyncio.Event()
    try:
        hub.lanes.put(messages.marker(name))
        await done.wait()
    finally:
        hub.markers.pop(name, None)
    return loop.time() - started

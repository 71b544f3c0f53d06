"""The harness's HTTP side: query count, memory, and the saves the fan-outs measure."""

import gc
import json
import os
import time

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from . import counter
from .models import Item, ScopedItem


def queries(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"queries": counter.total()})


def cpu(request: HttpRequest) -> JsonResponse:
    """CPU seconds the whole server process (every thread) has used so far."""
    return JsonResponse({"cpu": time.process_time()})


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def memory(request: HttpRequest) -> JsonResponse:
    gc.collect()
    return JsonResponse({"rss": rss_bytes(), "pid": os.getpid()})


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

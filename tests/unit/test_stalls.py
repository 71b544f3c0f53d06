"""tests/stalls.py reports what an event loop is waiting on."""

import asyncio
import re

from tests.stalls import report


async def test_report_names_pending_tasks_with_their_stacks_and_timers():
    async def waits_for_ever():
        await asyncio.sleep(1000)

    task = asyncio.get_running_loop().create_task(waits_for_ever(), name="stall-probe")
    await asyncio.sleep(0)
    try:
        text = report()
    finally:
        task.cancel()
    assert "task stall-probe cancelling=0" in text
    assert "in waits_for_ever" in text
    assert re.search(r"timer in (999|1000)\.\d s", text)

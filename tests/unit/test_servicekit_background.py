"""servicekit.runtime.in_background: a service's own loop runs while the block runs and is gone after it."""

from __future__ import annotations

import asyncio

import pytest

from servicekit.runtime import in_background


async def test_the_loop_runs_inside_the_block_and_is_cancelled_and_awaited_after_it() -> None:
    rounds = 0
    stopped = asyncio.Event()

    async def loop() -> None:
        nonlocal rounds
        try:
            while True:
                rounds += 1
                await asyncio.sleep(0.001)
        finally:
            stopped.set()

    async with in_background(loop(), "test-loop") as task:
        while rounds < 3:
            await asyncio.sleep(0.001)
        assert task.get_name() == "test-loop" and not task.done()
    assert task.cancelled() and stopped.is_set()  # awaited: its cleanup ran before the block returned


async def test_an_error_in_the_block_still_stops_the_loop() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    with pytest.raises(RuntimeError, match="boom"):
        async with in_background(forever(), "test-loop") as task:
            await asyncio.sleep(0)
            raise RuntimeError("boom")
    assert task.cancelled()

"""Dynamic batching: the rows of concurrent requests answered by one call of a compiled function.

Requests wait in a queue. The batcher takes the first, then keeps taking requests until the batch
holds `max_batch` rows or `max_wait_s` has passed since the first was taken, runs `function` on the
concatenated rows in its one worker thread (off the event loop; the model runs one batch at a time)
and hands each request its own rows of the answer. A request that would overflow the batch starts
the next one. Requests of more than `max_batch` rows are split by `submit`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable

import numpy as np


class Batcher:
    """`await batcher.submit(x)` with x (n, ...) -> function(x) (n, ...), computed in a shared batch.

    function: (B, ...) -> (B, ...) numpy, B <= max_batch, called in the worker thread.
    after_batch: (inputs (B, ...), outputs (B, ...)) -> None, called in the worker thread after the
      batch's requests have their answers (metrics, drift monitors), without the rows of requests whose
      outputs are not all finite (the server refuses those); its exceptions go to `on_error`.
    """

    def __init__(self, function: Callable[[np.ndarray], np.ndarray], max_batch: int, max_wait_s: float,
                 after_batch: Callable[[np.ndarray, np.ndarray], None] | None = None,
                 on_error: Callable[[BaseException], None] | None = None):
        self.function, self.max_batch, self.max_wait_s = function, max_batch, max_wait_s
        self.after_batch, self.on_error = after_batch, on_error
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="jaxdl-model")
        self.queue: asyncio.Queue | None = None
        self.task: asyncio.Task | None = None
        self.carried: tuple[np.ndarray, asyncio.Future] | None = None

    def start(self) -> None:
        """Starts the batching loop on the running event loop."""
        self.queue = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self.loop())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        self.executor.shutdown(wait=True)

    async def run_in_worker(self, function: Callable, *args):
        """function(*args) in the model's worker thread (between batches, never beside one)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)

    async def submit(self, x: np.ndarray) -> np.ndarray:
        """function's rows for x (n, ...), n >= 1; more than max_batch rows go as several requests."""
        if len(x) > self.max_batch:
            parts = [self.submit(x[start:start + self.max_batch]) for start in range(0, len(x), self.max_batch)]
            return np.concatenate(await asyncio.gather(*parts))
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((x, future))
        return await future

    async def next_batch(self) -> list[tuple[np.ndarray, asyncio.Future]]:
        """The requests of the next batch: at most max_batch rows, waiting at most max_wait_s for more."""
        first = self.carried or await self.queue.get()
        self.carried = None
        batch, rows = [first], len(first[0])
        deadline = asyncio.get_running_loop().time() + self.max_wait_s
        while rows < self.max_batch:
            if not self.queue.empty():
                item = self.queue.get_nowait()
            else:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self.queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
            if rows + len(item[0]) > self.max_batch:
                self.carried = item
                break
            batch.append(item)
            rows += len(item[0])
        return batch

    async def loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self.next_batch()
            live = [(x, future) for x, future in batch if not future.done()]  # a client that left is skipped
            if not live:
                continue
            x = np.concatenate([x for x, _ in live])
            try:
                outputs = await loop.run_in_executor(self.executor, self.function, x)
            except Exception as error:  # the batch's requests fail; the server goes on
                for _, future in live:
                    if not future.done():
                        future.set_exception(error)
                continue
            start = 0
            for part, future in live:
                if not future.done():
                    future.set_result(outputs[start:start + len(part)])
                start += len(part)
            if self.after_batch is not None:
                self.executor.submit(self.observe, x, outputs, [len(part) for part, _ in live])

    def observe(self, x: np.ndarray, outputs: np.ndarray, sizes: list[int]) -> None:
        """after_batch on the rows of the requests whose outputs are all finite (the others are refused)."""
        finite = np.isfinite(outputs.reshape(len(outputs), -1)).all(axis=1)
        if not finite.all():
            ends = np.cumsum(sizes)
            keep = np.repeat([finite[end - size:end].all() for size, end in zip(sizes, ends, strict=True)], sizes)
            if not keep.any():
                return
            x, outputs = x[keep], outputs[keep]
        try:
            self.after_batch(x, outputs)
        except Exception as error:
            if self.on_error is not None:
                self.on_error(error)

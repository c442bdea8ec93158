"""Run one function over many items on a pool of processes, surviving workers that die.

Both engines sit behind the standard ``concurrent.futures.Executor`` interface, so the per-item
code is the same everywhere:

- ``local`` (default): a process pool sized to the machine, one thread per worker, workers
  replaced after ``max_tasks_per_child`` items. A plain ``ProcessPoolExecutor`` fails every
  pending item when one worker dies (a decoder segfault, an out-of-memory kill); here the pool is
  rebuilt, the items that were in flight are run again one at a time to find the one that kills
  it, and only that item is reported as failed.
- ``dask``: ``distributed.Client(address).get_executor()`` on an existing cluster. Dask itself
  reschedules an item whose worker died and gives up on it after a few deaths (``KilledWorker``).

Any other exception raised by an item is retried a bounded number of times. Items are pulled
lazily, so at most a few per worker are in flight (archive members are spooled only then). A
source may yield :data:`WAIT` when its next items depend on results still in flight (segments
of a recording whose plan is being made): the engine then waits for a result and asks again.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pipeline.errors import PipelineError

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)
_threads_limited = False


def limit_threads() -> None:
    """One compute thread in this process: workers already run one per core."""
    global _threads_limited
    if _threads_limited:
        return
    for name in THREAD_ENV_VARS:
        os.environ[name] = "1"
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    _threads_limited = True


def _single_threaded_call(fn: Callable[[T], R], item: T) -> R:
    limit_threads()
    return fn(item)


def default_workers() -> int:
    """The cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


class _Wait:
    """The type of :data:`WAIT`."""

    def __repr__(self) -> str:
        return "WAIT"


WAIT = _Wait()  # yielded by a source: "nothing now; ask again after the next result"


@dataclass(frozen=True)
class TaskFailure:
    """An item that could not be run: its worker died, or it kept raising."""

    reason: str


@dataclass
class _Pending(Generic[T]):
    item: T
    attempts: int = 0


class Engine(ABC):
    """Runs ``fn`` over items on an executor; subclasses say how the executor is made."""

    def __init__(self, retries: int = 2) -> None:
        self.retries = retries
        self.executor: Executor | None = None

    @property
    @abstractmethod
    def capacity(self) -> int:
        """How many items run at once."""

    @abstractmethod
    def start(self) -> None:
        """Create the executor."""

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
            self.executor = None

    def __enter__(self) -> Engine:
        if self.executor is None:  # a caller may have started it already (to time it)
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def _recover(self, victims: list[_Pending[T]]) -> None:
        """Called when the executor broke with ``victims`` in flight."""

    def map_unordered(
        self, fn: Callable[[T], R], items: Iterable[T]
    ) -> Iterator[tuple[T, R | TaskFailure]]:
        """Yield ``(item, fn(item))`` as items finish, or ``(item, TaskFailure)``.

        ``fn`` must be a module-level function (it is pickled by reference).
        """
        call = functools.partial(_single_threaded_call, fn)
        source = iter(items)
        waiting: deque[_Pending[T]] = deque()  # retries, and items a broken pool refused
        self._suspects: deque[_Pending[T]] = deque()
        in_flight: dict[Future, _Pending[T]] = {}
        exhausted = False
        while True:
            source_waits = False
            if self._suspects:
                if not in_flight:
                    self._submit(call, self._suspects.popleft(), in_flight, self._suspects)
            else:
                while len(in_flight) < 2 * self.capacity:
                    if waiting:
                        pending = waiting.popleft()
                    elif not exhausted:
                        try:
                            item = next(source)
                        except StopIteration:
                            exhausted = True
                            continue
                        if item is WAIT:
                            source_waits = True
                            break
                        pending = _Pending(item)
                    else:
                        break
                    if not self._submit(call, pending, in_flight, waiting):
                        break
            if not in_flight:
                if self._suspects or waiting:
                    continue
                if source_waits:
                    raise RuntimeError("the item source waits for results but none is in flight")
                return
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            broken: list[_Pending[T]] = []
            for future in done:
                pending = in_flight.pop(future)
                try:
                    result = future.result()
                except BrokenProcessPool:
                    broken.append(pending)
                    continue
                except Exception as exc:  # any worker-side error may be transient
                    pending.attempts += 1
                    if pending.attempts <= self.retries and not self._is_final(exc):
                        log.info("retrying %s after %s: %s", pending.item, type(exc).__name__, exc)
                        waiting.append(pending)
                    else:
                        yield pending.item, TaskFailure(_describe(exc, pending.attempts))
                    continue
                yield pending.item, result
            if broken:
                victims = broken + list(in_flight.values())
                in_flight.clear()
                if len(victims) == 1:
                    yield (
                        victims[0].item,
                        TaskFailure(
                            "the worker process died while processing it (crash or out of memory)"
                        ),
                    )
                    self._recover([])
                else:
                    log.warning(
                        "a worker died with %d items in flight; running them one at a time "
                        "to find the one that kills it",
                        len(victims),
                    )
                    self._recover(victims)

    def _submit(
        self,
        call: Callable[[T], R],
        pending: _Pending[T],
        in_flight: dict[Future, _Pending[T]],
        put_back: deque[_Pending[T]],
    ) -> bool:
        """Submit one item; False (item put back) if the pool broke before it could take it."""
        assert self.executor is not None, "engine not started"
        try:
            future = self.executor.submit(call, pending.item)
        except BrokenProcessPool:
            put_back.appendleft(pending)
            if not in_flight:  # nobody left to blame: just replace the pool
                self._recover([])
            return False
        in_flight[future] = pending
        return True

    def _is_final(self, exc: BaseException) -> bool:
        """True for errors that retrying cannot fix."""
        return False


def _describe(exc: BaseException, attempts: int) -> str:
    text = (
        f"{type(exc).__name__}: {exc}".strip().splitlines()[0] if str(exc) else type(exc).__name__
    )
    return f"{text} (failed {attempts} times)"


class LocalEngine(Engine):
    """A process pool on this machine that rebuilds itself when a worker dies."""

    def __init__(
        self, workers: int | None = None, max_tasks_per_child: int = 200, retries: int = 2
    ):
        super().__init__(retries)
        self.workers = workers or default_workers()
        self.max_tasks_per_child = max_tasks_per_child
        self.rebuilds = 0

    @property
    def capacity(self) -> int:
        return self.workers

    def start(self) -> None:
        # forkserver: a clean parent for every worker (max_tasks_per_child cannot use fork).
        self.executor = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("forkserver"),
            initializer=limit_threads,
            max_tasks_per_child=self.max_tasks_per_child,
        )

    def _recover(self, victims: list[_Pending[T]]) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
        self.rebuilds += 1
        self.start()
        self._suspects.extend(victims)


class DaskEngine(Engine):
    """Items run on a Dask distributed cluster through its ``Executor`` interface."""

    def __init__(self, address: str | Any, retries: int = 2) -> None:
        super().__init__(retries)
        self.address = address
        self.client: Any = None

    @property
    def capacity(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    def start(self) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise PipelineError(
                "--engine dask needs the 'distributed' package: pip install 'dask[distributed]'"
            ) from None
        try:
            self.client = Client(self.address, timeout="30s")
        except (OSError, TimeoutError) as exc:
            raise PipelineError(
                f"cannot reach the Dask scheduler at {self.address} ({exc}); start it with "
                "`dask scheduler` or check --address"
            ) from None
        self.executor = self.client.get_executor(pure=False)

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True)  # ClientExecutor has no cancel_futures
            self.executor = None
        if self.client is not None:
            self.client.close()
            self.client = None

    def _is_final(self, exc: BaseException) -> bool:
        # KilledWorker: Dask already ran the item on several workers and each one died.
        return type(exc).__name__ == "KilledWorker"

    def _recover(self, victims: list[_Pending[T]]) -> None:
        # Dask reschedules items of dead workers itself; a broken local pool cannot happen here.
        self._suspects.extend(victims)


def make_engine(
    kind: str = "local",
    workers: int | None = None,
    address: str | None = None,
    retries: int = 2,
) -> Engine:
    """The engine named on the command line (``local`` or ``dask``)."""
    if kind == "local":
        return LocalEngine(workers=workers, retries=retries)
    if kind == "dask":
        if not address:
            raise PipelineError("--engine dask needs --address tcp://HOST:8786 (the scheduler)")
        return DaskEngine(address, retries=retries)
    raise PipelineError(f"unknown engine {kind!r}; use local or dask")

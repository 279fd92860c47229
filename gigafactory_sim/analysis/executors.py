"""Where a sweep's runs execute: local processes (default) or an existing Dask distributed cluster.

An executor is one method, :meth:`Executor.run`, that yields results as tasks finish (in any order); a sweep
orders results itself, so what it writes does not depend on the executor or the number of workers.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, Protocol, TypeVar

__all__ = ["DaskExecutor", "Executor", "LocalExecutor"]

T = TypeVar("T")
R = TypeVar("R")


PARENT_POLL_S = 0.5
"""How often a local worker checks that the sweep that started it is still alive."""


def _exit_with_parent(parent_pid: int) -> None:
    """Initialiser of local workers: die with the sweep process.

    On Linux the kernel sends SIGKILL when the parent exits (``prctl(PR_SET_PDEATHSIG)``); everywhere a daemon
    thread polls the parent and exits when it is gone (re-parented), so no worker outlives a killed sweep by more
    than :data:`PARENT_POLL_S`, finishing queued runs and racing a resumed sweep on the same folders.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before we got here
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_S)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


class Executor(Protocol):
    def run(self, fn: Callable[[T], R], tasks: Sequence[T]) -> Iterator[R]:
        """Apply ``fn`` to every task; yield each result when ready. ``fn`` must be importable (picklable)."""
        ...


class LocalExecutor:
    """``workers`` local processes (started with *spawn*, so safe on every platform and with threads), which
    exit when this process dies; ``workers=1`` runs in this process, one task after another."""

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers

    def __repr__(self) -> str:
        return f"LocalExecutor(workers={self.workers})"

    def run(self, fn: Callable[[T], R], tasks: Sequence[T]) -> Iterator[R]:
        if self.workers == 1 or len(tasks) <= 1:
            for task in tasks:
                yield fn(task)
            return
        pool = ProcessPoolExecutor(
            max_workers=min(self.workers, len(tasks)),
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_exit_with_parent,
            initargs=(os.getpid(),),
        )
        try:
            pending: set[Future[R]] = {pool.submit(fn, task) for task in tasks}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        finally:  # also on an interrupt or when the caller stops early: drop what has not started
            pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    """Tasks submitted to an existing Dask distributed scheduler at ``address`` (``tcp://host:8786``).

    Needs the ``dask`` extra (``pip install -e .[dask]``) here and gigafactory-sim installed on the workers.
    Dask is imported only when this executor runs.
    """

    def __init__(self, address: str) -> None:
        self.address = address

    def __repr__(self) -> str:
        return f"DaskExecutor({self.address!r})"

    def run(self, fn: Callable[[T], R], tasks: Sequence[T]) -> Iterator[R]:
        try:
            from distributed import Client, as_completed
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise RuntimeError("the Dask executor needs dask[distributed]: pip install -e .[dask]") from exc
        client: Any = Client(self.address, set_as_default=False)
        futures: list[Any] = []
        try:
            futures = client.map(fn, list(tasks), pure=False)
            for future in as_completed(futures, loop=client.loop):  # not the default client: none is set
                yield future.result()
        finally:
            unfinished = [f for f in futures if not f.done()]
            if unfinished:
                client.cancel(unfinished)
            client.close()

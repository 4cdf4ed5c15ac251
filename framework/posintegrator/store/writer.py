"""Group commit: one thread owns the SQLite connection and commits queued work in batches.

Every call of the store becomes a job. The writer thread takes all jobs waiting at that moment,
runs each inside its own savepoint of one transaction, commits once (one fsync for the batch),
and only then hands each job its result. A caller therefore never hears "done" before its
write is durable, but a burst of 32 concurrent orders costs one disk flush instead of 32. A
job that fails rolls back its own savepoint only; the others of its batch still commit.

The same writer serves PostgreSQL (:mod:`posintegrator.store.postgres`), whose transactions are
SERIALIZABLE: when the database refuses a batch because a concurrent worker's transaction
conflicts with it (``retry_batch`` says which errors those are), the whole batch rolls back and
runs again after a short random pause; refused again, its jobs run one at a time, each in a
transaction of its own. Either way every job sees the database as if it were the only writer.
"""

from __future__ import annotations

import asyncio
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, TypeVar

from posintegrator.store.sql import SQLConnection

T = TypeVar("T")

#: Most jobs one transaction takes: bounds how long a batch holds results back.
MAX_BATCH = 256
#: Runs of one job refused by conflicts with other writers before its caller is told the error.
MAX_JOB_RUNS = 50
#: The longest pause before the first rerun of a conflicting job (it grows with each rerun).
CONFLICT_PAUSE_SECONDS = 0.002
#: Runs of a whole batch again after a conflict, before its jobs run one at a time.
BATCH_RERUNS = 2


def _never(_error: BaseException) -> bool:
    return False


@dataclass
class _Job:
    fn: Callable[[], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    transactional: bool


class GroupCommitWriter:
    """Runs jobs on one thread against one connection, committing them in batches."""

    def __init__(
        self,
        name: str = "posintegrator-db",
        *,
        begin: str = "BEGIN IMMEDIATE",
        retry_batch: Callable[[BaseException], bool] = _never,
    ) -> None:
        """:param begin: the statement that opens a write transaction.
        :param retry_batch: whether an error means the batch conflicted with another writer
            and must run again from its start."""
        self._begin = begin
        self._retry_batch = retry_batch
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self.db: SQLConnection | None = None
        self._in_batch = False
        self._savepoints = 0
        self.batches = 0
        self.jobs = 0
        #: Batches run again because they conflicted with another writer (PostgreSQL).
        self.conflicts = 0
        #: Told how long each commit took, in seconds (metrics); called on the writer thread.
        self.observe: Callable[[float], None] | None = None

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    async def run(self, fn: Callable[[], T], *, transactional: bool = True) -> T:
        """Run ``fn`` on the writer thread; its result arrives once its batch is committed.

        ``transactional=False`` runs it outside any transaction (opening, closing, migrating).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(fn, future, loop, transactional))
        return await future

    def stop(self) -> None:
        """Finish the queued jobs and end the thread."""
        self._queue.put(None)
        self._thread.join()

    @contextmanager
    def transaction(self) -> Iterator[SQLConnection]:
        """A unit of work that commits or rolls back as a whole.

        Inside a batch it is a savepoint of the batch's transaction; outside (jobs run with
        ``transactional=False``) it is a transaction of its own.
        """
        db = self.db
        if db is None:
            raise RuntimeError("the store is not open")
        if not self._in_batch:
            db.execute(self._begin)
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return
        self._savepoints += 1
        name = f"job{self._savepoints}"
        db.execute(f"SAVEPOINT {name}")
        try:
            yield db
        except BaseException:
            db.execute(f"ROLLBACK TO {name}")
            db.execute(f"RELEASE {name}")
            raise
        db.execute(f"RELEASE {name}")

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                batch.append(job)
            self._run_batch(batch)
            if stop:
                return

    def _run_batch(self, batch: list[_Job]) -> None:
        outcomes = [self._call(job) for job in batch if not job.transactional]
        grouped = [job for job in batch if job.transactional]
        if grouped:
            try:
                outcomes.extend(self._run_grouped(grouped))
            except BaseException as exc:  # e.g. BEGIN failed: fail these jobs, keep serving
                self._roll_back()
                outcomes.extend((job, None, exc) for job in grouped)
        self.jobs += len(batch)
        _hand_over(outcomes)

    def _run_grouped(self, grouped: list[_Job]) -> list[tuple[_Job, Any, BaseException | None]]:
        """Run jobs in one transaction, each in its own savepoint; commit once."""
        db = self.db
        if db is None:
            closed = RuntimeError("the store is not open")
            return [(job, None, closed) for job in grouped]
        started = time.perf_counter()
        results = self._run_once(db, grouped)
        for run in range(BATCH_RERUNS):
            if not self._conflicted(results):
                break
            # Another worker's transaction won: most often the batch goes through when run
            # again after a short random pause (two workers retrying in step would conflict
            # again), costing one commit rather than one per job.
            self.conflicts += 1
            time.sleep(random.uniform(0, CONFLICT_PAUSE_SECONDS * (run + 1)))
            results = self._run_once(db, grouped)
        if self._conflicted(results):
            # Still refused: the jobs one at a time, so that a job that keeps conflicting holds
            # back no other.
            self.conflicts += 1
            results = [self._run_alone(db, job) for job in grouped]
        self.batches += 1
        if self.observe is not None:
            self.observe(time.perf_counter() - started)
        return results

    def _conflicted(self, results: list[tuple[_Job, Any, BaseException | None]]) -> bool:
        return any(error is not None and self._retry_batch(error) for _j, _r, error in results)

    def _run_alone(self, db: SQLConnection, job: _Job) -> tuple[_Job, Any, BaseException | None]:
        """Run one job in transactions of its own until it does not conflict (or gives up)."""
        outcome: tuple[_Job, Any, BaseException | None] = (job, None, None)
        for run in range(MAX_JOB_RUNS):
            time.sleep(random.uniform(0, CONFLICT_PAUSE_SECONDS * (run + 1)))
            [outcome] = self._run_once(db, [job])
            if not self._conflicted([outcome]):
                return outcome
            self.conflicts += 1
        return outcome

    def _run_once(
        self, db: SQLConnection, grouped: list[_Job]
    ) -> list[tuple[_Job, Any, BaseException | None]]:
        """One run of a batch: its jobs' outcomes, every one of them the commit's error when the
        commit failed (nothing of the batch was written)."""
        db.execute(self._begin)
        self._in_batch = True
        try:
            results = [self._call(job) for job in grouped]
        finally:
            self._in_batch = False
        if self._conflicted(results):
            db.execute("ROLLBACK")  # a conflict inside the batch: all of it runs again
            return results
        try:
            db.execute("COMMIT")
        except Exception as exc:
            self._roll_back()
            return [(job, None, exc) for job in grouped]
        return results

    def _roll_back(self) -> None:
        """Leave no transaction open after a batch failed to run.

        Without this, one failed ``BEGIN`` or ``ROLLBACK`` would leave the connection inside a
        transaction, and every later batch would fail to begin.
        """
        if self.db is not None and self.db.in_transaction:
            with suppress(Exception):
                self.db.execute("ROLLBACK")

    @staticmethod
    def _call(job: _Job) -> tuple[_Job, Any, BaseException | None]:
        try:
            return job, job.fn(), None
        except BaseException as exc:  # handed to the caller, raised there
            return job, None, exc


def _hand_over(outcomes: list[tuple[_Job, Any, BaseException | None]]) -> None:
    """Pass each job's outcome to its caller's event loop: one wake-up per loop and batch, not
    one per job (a closed loop has no one waiting)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, Any, BaseException | None]]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].loop, []).append(outcome)
    for loop, settled in by_loop.items():
        with suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle_all, settled)


def _settle_all(outcomes: list[tuple[_Job, Any, BaseException | None]]) -> None:
    for job, result, error in outcomes:
        _settle(job.future, result, error)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # cancelled by its caller
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)

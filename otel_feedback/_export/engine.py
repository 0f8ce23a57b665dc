"""The delivery engine: the parts of :mod:`otel_feedback._export.delivery`, wired together.

The application's threads only queue (``put``). The intake's thread turns what they queued
into records, writes them to the spool when there is one, and offers them to every route;
each route delivers to one exporter on its own thread; the ledger counts every record in
exactly one place per exporter. This module builds the parts (again in a forked child), and
runs ``flush`` and ``shutdown`` over them.

Bounds: the queue and each route's backlog hold ``max_queue_size`` records at most. Without
a spool, a full backlog of a route that is taking batches holds the intake back, so the
queue fills and ``put`` waits up to 0.1 s for room before dropping; a route whose endpoint is
down drops what overflows its backlog, and what waited longer than ``retry_for_s``. With a
spool, none of that is dropped: it stays on disk and is read back once the endpoint takes
batches again; what the disk refuses waits in memory and is written as soon as it has room.

Shutdown and exit share one deadline: a route whose endpoint is down gets no further try,
the others deliver until they are empty or the deadline passes; what is left in memory goes
to the spool when it takes it, and is otherwise counted as dropped. A batch still with its
exporter at the deadline stays counted as pending (or spooled) until its export returns.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Generic, TypeVar

from opentelemetry.metrics import MeterProvider

from otel_feedback._export.base import FeedbackExporter
from otel_feedback._export.delivery.backlog import SpoolKeeper
from otel_feedback._export.delivery.intake import Intake
from otel_feedback._export.delivery.ledger import FeedbackExportStats, Ledger
from otel_feedback._export.delivery.policy import State
from otel_feedback._export.delivery.progress import Progress
from otel_feedback._export.delivery.route import Route
from otel_feedback._export.spool import Spool
from otel_feedback._log import logger
from otel_feedback._model import Feedback

__all__ = ["Engine", "FeedbackExportStats"]

Item = TypeVar("Item")

# After this long waiting at shutdown, one line says what is still being delivered.
_SAY_AFTER_S = 1.0
# How long each exporter's own shutdown may take, past the deadline.
_EXPORTER_SHUTDOWN_S = 1.0
# Modules the background threads use, imported here, on the thread that builds the engine:
# a thread importing a module when another thread forks leaves that module's import lock
# held forever in the child (gunicorn's and uWSGI's preloading fork exactly then).
_BACKGROUND_MODULES = (
    "otel_feedback._decode",
    "opentelemetry.instrumentation.utils",
    "opentelemetry.exporter.otlp.proto.common._log_encoder",
    "encodings.idna",
    "netrc",  # requests reads ~/.netrc on each request to a new host
    "shlex",
)


class Engine(Generic[Item]):
    """Queue, intake, routes, spool and ledger of one processor. See the module docstring."""

    def __init__(
        self,
        exporters: Sequence[FeedbackExporter],
        *,
        to_record: Callable[[Item], Feedback],
        max_queue_size: int,
        max_export_batch_size: int,
        schedule_delay_s: float,
        retry_for_s: float,
        spool: tuple[str, Callable[[], Spool]] | None,
        meter_provider: MeterProvider | None,
    ) -> None:
        self._suppressed = _prepare_background()
        self._to_record = to_record
        self._max_queue = max_queue_size
        self._batch_size = max_export_batch_size
        self._delay_s = schedule_delay_s
        self._retry_for_s = retry_for_s
        self._meter_provider = meter_provider
        self._named = _route_names(exporters)
        self._keeper = SpoolKeeper(*spool) if spool is not None else None
        self._build()

    def _build(self) -> None:
        self._ledger = Ledger(
            [name for name, _ in self._named], meter_provider=self._meter_provider
        )
        self._progress = Progress()
        self._lock = threading.Lock()
        self._final = False
        self._stopped = False
        self._routes = [
            Route(
                name,
                exporter,
                ledger=self._ledger,
                keeper=self._keeper,
                max_batch=self._batch_size,
                max_held=self._max_queue,
                retry_for_s=self._retry_for_s,
                progress=self._progress,
                wake_intake=self._wake_intake,
                suppressed=self._suppressed,
            )
            for name, exporter in self._named
        ]
        self._intake: Intake[Item] = Intake(
            to_record=self._to_record,
            ledger=self._ledger,
            routes=self._routes,
            keeper=self._keeper,
            max_queue=self._max_queue,
            batch_size=self._batch_size,
            delay_s=self._delay_s,
            progress=self._progress,
            suppressed=self._suppressed,
        )
        self._intake.start()
        for route in self._routes:
            route.start()

    def _wake_intake(self) -> None:
        self._intake.wake()

    def after_fork(self) -> None:
        """In a forked child: new parts, counts and threads; the parent sends its own records."""
        if self._keeper is not None:
            self._keeper.reopen_after_fork()
        self._build()

    # -- the application's side --------------------------------------------------------

    def put(self, items: Sequence[Item]) -> None:
        """Queue ``items``; called on the application's threads. Never raises."""
        self._intake.put(items)

    # -- reading -----------------------------------------------------------------------

    def stats(self) -> FeedbackExportStats:
        """A snapshot of the counts."""
        return self._ledger.stats()

    @property
    def dropped(self) -> int:
        """Records lost so far, once per exporter that lost them."""
        return self._ledger.total_dropped()

    @property
    def retrying(self) -> int:
        """Records held in memory (or being tried again) for an exporter whose endpoint is down."""
        return sum(
            self._ledger.in_memory(route.name)
            for route in self._routes
            if route.state is State.DOWN
        )

    # -- flush and shutdown ------------------------------------------------------------

    def flush(self, timeout_s: float, *, wait_for_down: bool = True) -> bool:
        """Deliver what is queued; ``True`` when nothing is left within ``timeout_s``.

        Routes whose endpoint is down are waited for (at their backoff) unless
        ``wait_for_down`` is false, as at exit.
        """
        if self._stopped:
            return True
        deadline = time.monotonic() + timeout_s
        self._intake.flushing(+1)
        try:
            while True:
                generation = self._progress.generation
                if self._intake.idle() and all(
                    r.idle(wait_for_down=wait_for_down) for r in self._routes
                ):
                    return all(r.idle(wait_for_down=True) for r in self._routes)
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._progress.wait_past(generation, left)
        finally:
            self._intake.flushing(-1)

    def shutdown(self, timeout_s: float) -> None:
        """Deliver what can be within ``timeout_s``; then spool or count the rest. Stop."""
        with self._lock:
            if self._final:
                return
            self._final = True
        start = time.monotonic()
        deadline = start + timeout_s
        self._intake.begin_shutdown()
        for route in self._routes:
            route.begin_shutdown(deadline)
        said = False
        while True:
            generation = self._progress.generation
            opened = self._keeper is None or self._keeper.opened  # leftovers may go to disk
            if opened and self._intake.done and all(r.finished for r in self._routes):
                break
            now = time.monotonic()
            if now >= deadline:
                break
            if not said and now - start >= _SAY_AFTER_S:
                said = True
                stats = self._ledger.stats()
                logger.warning(
                    "Still delivering %d feedback record(s) before shutdown; waiting at most "
                    "%.1fs more",
                    sum(stats.pending.values()),
                    deadline - now,
                )
            self._progress.wait_past(generation, min(deadline - now, _SAY_AFTER_S))
        self._stop()

    def _stop(self) -> None:
        self._intake.close()
        self._stopped = True
        in_flight = Counter({route.name: route.close() for route in self._routes})
        _shut_down_all(self._routes)
        self._ledger.flush_log()
        for name, count in in_flight.items():
            if count:
                logger.warning(
                    "%d feedback record(s) were still being sent to %s when the shutdown "
                    "deadline passed; they count as pending, and are lost if the process ends "
                    "before the exporter answers",
                    count,
                    name,
                )
        if self._keeper is not None and self._keeper.usable:
            for route in self._routes:
                route.retry_removals()
            self._keeper.check_file()
            stats = self._ledger.stats()
            self._keeper.say_what_waits(
                sum(stats.spooled.values()), sum(r.unremoved() for r in self._routes)
            )


def _shut_down_all(routes: Sequence[Route]) -> None:
    """Each exporter's own shutdown, each bounded: a hung exporter must not hold the exit."""
    for route in routes:
        thread = threading.Thread(
            target=_shut_down, args=(route,), name="otel_feedback.shutdown", daemon=True
        )
        thread.start()
        thread.join(_EXPORTER_SHUTDOWN_S)
        if thread.is_alive():
            logger.warning(
                "Feedback exporter %s did not shut down within %gs",
                route.name,
                _EXPORTER_SHUTDOWN_S,
            )


def _shut_down(route: Route) -> None:
    try:
        route.exporter.shutdown()
    except Exception as error:  # noqa: BLE001 - shutting down must reach every exporter
        logger.warning("Feedback exporter %s raised on shutdown: %r", route.name, error)
        logger.debug("The error's traceback", exc_info=True)


def _route_names(exporters: Sequence[FeedbackExporter]) -> list[tuple[str, FeedbackExporter]]:
    """A stable name per exporter: its class, numbered when the class repeats."""
    seen: Counter[str] = Counter()
    named = []
    for exporter in exporters:
        base = type(exporter).__name__
        seen[base] += 1
        named.append((base if seen[base] == 1 else f"{base}#{seen[base]}", exporter))
    return named


def _prepare_background() -> Callable[[], AbstractContextManager[None]]:
    """Import what the background threads need; how they suppress instrumentation."""
    for module in _BACKGROUND_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:  # an optional exporter's module: its exporter is not used
            logger.debug("%s is not installed", module)
    from opentelemetry.instrumentation.utils import (  # noqa: PLC0415 - with the others above
        suppress_instrumentation,
    )

    # Exports run with instrumentation suppressed: their own HTTP calls are not traced.
    return suppress_instrumentation

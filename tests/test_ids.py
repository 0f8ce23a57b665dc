"""Feedback ids: from the operating system's randomness, unique whatever the application does."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
from uuid import RFC_4122, UUID

import pytest

from otel_feedback._ids import random_uuid4, random_uuid4_int

SEEDED_APP = """
import random
from opentelemetry.sdk.trace import TracerProvider
from otel_feedback import FeedbackSpanProcessor, InMemoryFeedbackExporter, record_feedback

random.seed(42)  # a reproducible run of the application: its feedback ids must still differ
provider = TracerProvider()
provider.add_span_processor(FeedbackSpanProcessor(InMemoryFeedbackExporter()))
with provider.get_tracer("app").start_as_current_span("run"):
    print(record_feedback("k", score=1).id)
    print(record_feedback("k", score=1, correction={"a": 1}).id)  # the slower path
provider.shutdown()
"""

# The bits a version-4 UUID fixes: the version nibble and the two variant bits.
_FIXED = (0xF000 << 64) | (0xC000 << 48)


def _is_version_4(number: int) -> bool:
    uuid = UUID(int=number)
    return uuid.version == 4 and uuid.variant == RFC_4122


def test_applications_that_seed_random_get_different_ids() -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    runs = [
        subprocess.run(
            [sys.executable, "-c", SEEDED_APP],
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.split()
        for _ in range(2)
    ]
    assert all(len(ids) == 2 for ids in runs)
    first, second = ({UUID(i) for i in ids} for ids in runs)
    assert len(first) == len(second) == 2
    assert not first & second


def test_seeding_random_in_the_process_does_not_repeat_ids() -> None:
    random.seed(42)
    before = [random_uuid4_int() for _ in range(600)]  # past one draw of the pool
    random.seed(42)
    after = [random_uuid4_int() for _ in range(600)]
    assert len(set(before) | set(after)) == 1200


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_a_forked_child_draws_other_ids_than_its_parent() -> None:
    random_uuid4_int()  # the parent's pool holds ids the child must not hand out
    reading, writing = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.write(writing, ",".join(str(random_uuid4_int()) for _ in range(5)).encode())
        finally:
            os._exit(0)
    os.close(writing)
    with os.fdopen(reading) as pipe:
        child = {int(number) for number in pipe.read().split(",")}
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    parent = {random_uuid4_int() for _ in range(5)}
    assert len(child) == 5
    assert not parent & child


def test_many_ids_from_several_threads_are_unique_version_4_uuids() -> None:
    per_thread, threads = 20_000, 8
    drawn: list[list[int]] = [[] for _ in range(threads)]
    start = threading.Barrier(threads)

    def draw(into: list[int]) -> None:
        start.wait()  # all at once, so that they race for the pool
        into.extend(random_uuid4_int() for _ in range(per_thread))

    workers = [threading.Thread(target=draw, args=(into,)) for into in drawn]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    numbers = [number for into in drawn for number in into]
    assert len(numbers) == per_thread * threads
    assert len(set(numbers)) == len(numbers)
    assert all(_is_version_4(number) for number in numbers)
    # Every other bit takes both values: the bits are random, not a counter or a constant.
    ones = zeros = 0
    for number in numbers[:1000]:
        ones |= number
        zeros |= ~number
    free = ((1 << 128) - 1) & ~_FIXED
    assert ones & free == free
    assert zeros & free == free


def test_random_uuid4_is_the_uuid_of_a_random_version_4_int() -> None:
    uuid = random_uuid4()
    assert isinstance(uuid, UUID)
    assert uuid.version == 4
    assert UUID(str(uuid)) == uuid

"""Target 5: many workers on one name: throughput, waits, fairness and mutual exclusion.

Twenty workers contend for one name: 16 threads sharing one Locker in one process, plus 4
single-threaded processes with a Locker each; together they make 5,000 acquisitions, an equal
share each. The five processes are spawned once and run every job (driver x backend x rep) in
lock step, started together at a barrier. Inside the lock each worker increments a counter in a
shared file with a non-atomic read-modify-write, and notes when it entered and left, so that
mutual exclusion is checked twice: the final count, and no two critical sections overlapping.
The baseline is the same run with raw driver connections (one per worker).
"""

from __future__ import annotations

import os
import queue
import tempfile
import threading
import time
import traceback
import uuid
from typing import Any

from .backends import Spec
from .context import RunContext
from .report import Column, Section, Target
from .spawn import CONTEXT
from .stats import median, percentile

__all__ = ["run"]

THREADS = 16
PROCESSES = 4
_BARRIER_SECONDS = 300.0


def _work(
    outcome: list[Any],
    slot: int,
    backend: Any,
    name: str,
    share: int,
    fd: int,
    offset: int,
    start: threading.Barrier,
) -> None:
    """One worker thread: ``share`` acquisitions; its records (or its error) go to ``outcome``."""
    clock = time.monotonic_ns
    records = []
    try:
        start.wait()
        for _ in range(share):
            called = clock()
            backend.acquire(name)
            entered = clock()
            # Deliberately not atomic: a second holder inside would lose an increment.
            value = int.from_bytes(os.pread(fd, 8, offset), "little")
            os.pwrite(fd, (value + 1).to_bytes(8, "little"), offset)
            left = clock()
            backend.release()
            records.append((called, entered, left))
    except Exception:  # noqa: BLE001 - reported to the parent, not lost
        outcome[slot] = traceback.format_exc()
        return
    outcome[slot] = records


def worker_process(
    number: int,
    threads: int,
    jobs: list[tuple[Spec, str]],
    share: int,
    counter_path: str,
    barrier: Any,
    results: Any,
) -> None:
    """One spawned process: run every job with ``threads`` worker threads."""
    fd = os.open(counter_path, os.O_RDWR)
    try:
        for job, (spec, name) in enumerate(jobs):
            factory = spec.factory()
            outcome: list[Any] = [None] * threads
            try:
                backends = [factory.open() for _ in range(threads)]
                # Warm, as a running application is: connections open, the Locker's pool full.
                for slot, backend in enumerate(backends):
                    backend.acquire(f"{name}-warm-{number}-{slot}")
                for backend in backends:
                    backend.release()
                start = threading.Barrier(threads + 1)
                workers = [
                    threading.Thread(
                        target=_work,
                        args=(outcome, slot, backend, name, share, fd, job * 8, start),
                    )
                    for slot, backend in enumerate(backends)
                ]
                for worker in workers:
                    worker.start()
                barrier.wait(_BARRIER_SECONDS)
                start.wait()
                for worker in workers:
                    worker.join()
            finally:
                factory.close()
            results.put((job, number, outcome))
    finally:
        os.close(fd)


def _analyse(
    per_worker: list[list[tuple[int, int, int]]], share: int, final: int
) -> dict[str, Any]:
    records = sorted(
        (entered, left, called, worker)
        for worker, items in enumerate(per_worker)
        for called, entered, left in items
    )
    overlaps = sum(1 for a, b in zip(records, records[1:]) if b[0] < a[1])
    switches = sum(1 for a, b in zip(records, records[1:]) if a[3] != b[3])
    waits = [(entered - called) / 1e6 for entered, _, called, _ in records]
    span = max(r[1] for r in records) - min(r[2] for r in records)
    worker_max = [max((e - c) / 1e6 for c, e, _ in items) for items in per_worker]
    worker_mean = [sum((e - c) / 1e6 for c, e, _ in items) / len(items) for items in per_worker]
    return {
        "throughput": len(records) / (span / 1e9),
        "wait_p50": percentile(waits, 50),
        "wait_p99": percentile(waits, 99),
        "wait_max": max(waits),
        "worker_max_min": min(worker_max),
        "worker_max_max": max(worker_max),
        "worker_mean_min": min(worker_mean),
        "worker_mean_max": max(worker_mean),
        "thread_mean": median(worker_mean[:THREADS]),
        "process_mean": median(worker_mean[THREADS:]),
        "completed": all(len(items) == share for items in per_worker),
        "exclusive": overlaps == 0 and final == len(records),
        "overlaps": overlaps,
        "switch_ratio": switches / max(len(records) - 1, 1),
    }


def run(ctx: RunContext) -> Section:
    """Measure and build the section."""
    total = ctx.size(5000, 1000)
    workers = THREADS + PROCESSES
    share = total // workers
    section = Section(
        name="contention",
        title=f"{THREADS} threads + {PROCESSES} processes, {share * workers:,} acquisitions "
        "of one name",
        columns=[
            Column("backend", "backend"),
            Column("throughput", "acq/s", "{:,.0f}"),
            Column("ratio", "x raw", "{:.2f}"),
            Column("wait_p50", "wait p50 ms", "{:.2f}"),
            Column("wait_p99", "wait p99 ms", "{:.1f}"),
            Column("wait_max", "longest ms", "{:.1f}"),
            Column("worker_max", "worker longest ms", "{}"),
            Column("worker_mean", "worker mean ms", "{}"),
            Column("thread_vs_process", "mean: thread/process ms", "{}"),
            Column("switch_ratio", "switch", "{:.2f}"),
            Column("completed", "all done", "{}"),
            Column("exclusive", "exclusive", "{}"),
        ],
    )
    run_id = uuid.uuid4().hex[:12]
    specs = ctx.mysql_specs(("raw", "lib"))
    jobs = [
        (spec, f"bench-contention-{run_id}-{rep}-{index}")
        for rep in range(ctx.reps)
        for index, spec in enumerate(specs)
    ]
    ctx.log(f"contention: {len(jobs)} jobs of {share * workers} acquisitions")
    handle, counter_path = tempfile.mkstemp(prefix="pymysqllock-bench-counter-")
    os.write(handle, bytes(8 * len(jobs)))
    os.close(handle)
    barrier = CONTEXT.Barrier(PROCESSES + 1)
    results = CONTEXT.Queue()
    processes = [
        CONTEXT.Process(
            target=worker_process,
            args=(
                number,
                THREADS if number == 0 else 1,
                jobs,
                share,
                counter_path,
                barrier,
                results,
            ),
            daemon=True,
        )
        for number in range(PROCESSES + 1)
    ]
    collected: dict[int, list[list[Any]]] = {}
    try:
        for process in processes:
            process.start()
        for _ in range(len(jobs) * len(processes)):
            try:
                index, number, outcome = results.get(timeout=_BARRIER_SECONDS)
            except queue.Empty:
                raise RuntimeError("contention workers stopped answering") from None
            collected.setdefault(index, [[] for _ in processes])[number] = outcome
        for process in processes:
            process.join(30)
        with open(counter_path, "rb") as counters:
            finals = [int.from_bytes(counters.read(8), "little") for _ in jobs]
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()
        os.unlink(counter_path)
    analysed: dict[str, list[dict[str, Any]]] = {spec.label: [] for spec in specs}
    for job, (spec, _name) in enumerate(jobs):
        per_worker = [item for outcome in collected[job] for item in outcome]
        errors = [item for item in per_worker if isinstance(item, str)]
        if errors:
            raise RuntimeError(f"{spec.label}: a worker failed:\n{errors[0]}")
        analysed[spec.label].append(_analyse(per_worker, share, finals[job]))
    for spec in specs:
        reps = analysed[spec.label]
        row: dict[str, Any] = {"backend": spec.label}
        for key in ("throughput", "wait_p50", "wait_p99", "switch_ratio"):
            row[key] = median(r[key] for r in reps)
        row["wait_max"] = max(r["wait_max"] for r in reps)
        row["worker_max"] = (
            f"{median(r['worker_max_min'] for r in reps):.0f}-"
            f"{median(r['worker_max_max'] for r in reps):.0f}"
        )
        row["worker_mean"] = (
            f"{median(r['worker_mean_min'] for r in reps):.1f}-"
            f"{median(r['worker_mean_max'] for r in reps):.1f}"
        )
        row["thread_vs_process"] = (
            f"{median(r['thread_mean'] for r in reps):.1f}/"
            f"{median(r['process_mean'] for r in reps):.1f}"
        )
        row["completed"] = all(r["completed"] for r in reps)
        row["exclusive"] = all(r["exclusive"] for r in reps)
        raw = analysed.get(f"raw/{spec.driver}")
        row["ratio"] = (
            median(a["throughput"] / b["throughput"] for a, b in zip(reps, raw))
            if raw is not None and spec.kind != "raw"
            else None
        )
        row["reps"] = reps
        section.rows.append(row)
        if spec.kind == "lib":
            section.targets += [
                Target(
                    "T5",
                    "every worker completed its share",
                    spec.driver,
                    row["completed"],
                    1.0,
                    at_least=True,
                ),
                Target(
                    "T5", "mutual exclusion held", spec.driver, row["exclusive"], 1.0, at_least=True
                ),
            ]
    section.notes = [
        (
            f"{workers} workers x {share} acquisitions; medians over {ctx.reps} reps, 'longest' is "
            "the longest single wait in any rep"
        ),
        (
            "worker longest / worker mean: the range over workers of each worker's longest "
            "and mean wait (a starved worker shows as a high upper end); thread/process: "
            "median of the 16 threads' mean waits / of the 4 processes'"
        ),
        "switch: share of consecutive acquisitions by different workers (1 = strict turn-taking)",
        "exclusive: no overlapping critical sections and the shared counter equals the count",
    ]
    return section

"""Fencing stress: paused holders wake up after losing the lock and try to write with old tokens.

Run it as ``python tests/fence_stress.py [--duration SECS] [--workers N] [--server-url URL]``
(``make stress-fencing``). Without ``--server-url`` a throwaway MariaDB/MySQL server is started
from the installed binaries and removed afterwards.

What happens
------------
``--workers`` worker processes (default 6), spread round-robin over PyMySQL, mysql-connector and
mysqlclient, loop: acquire the one lock ``NAME`` with ``fencing=True``, log ``acquired`` with the
token and the session's id, work a few milliseconds, then write the token to the guarded table
on a **separate** connection, in one transaction::

    UPDATE guarded SET fence = token WHERE id = 1 AND fence <= token   -- the guard
    INSERT INTO accepted (token, worker) VALUES (token, worker)        -- only if it matched

and log the attempt (``accepted`` true or false). Then the same write once more through
``lock.cursor()`` on the holding session, logged as ``cursor`` (or ``cursor_lost`` when that
raised :class:`~PyMySQLLock.LockLostError`), and release.

Meanwhile the supervisor, every 0.3 to 1 s, watches the log for the holder, ``SIGSTOP``\\ s its
process, ``KILL CONNECTION``\\ s its session (the lock is now free: this is a holder paused past
its loss, as a long GC pause or a frozen VM would make it), logs ``stopped`` with the holder's
token, waits until another worker has had a write with a larger token accepted, and
``SIGCONT``\\ s it. Most pauses catch the holder at its work, before its write: resumed, it
carries on straight into its write with the old token. The others catch it wherever it is; one
frozen inside its write may keep the guarded row locked, so no successor can write, and it is
resumed after a moment without waiting for one.

The supervisor decides when the run ends (it creates a stop file; each worker finishes the hold
it is in and exits). With ``--require-chaos`` it goes on past ``--duration`` until a paused holder
has tried a stale write, for at most ``CHAOS_CAP_FACTOR`` (3) times the duration, so that a slow
machine gets the coverage the run requires instead of a failure for want of it.

The invariants checked afterwards
---------------------------------
* The ``accepted`` table, in insertion order (its auto-increment key, assigned under the guarded
  row's lock), has strictly increasing tokens: no accepted write carries a smaller token than an
  earlier accepted one.
* Every write attempt that began after its holder was resumed, once a successor's write had been
  accepted, is rejected: on the separate connection by the guard, and on the holding session
  because the session is gone (``cursor_lost``). A write that began before the pause may
  complete after it: it ran while the lock was held.
* No worker raised an unexpected error; with ``--require-chaos``, at least one paused holder
  tried a stale write.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DRIVERS = ("pymysql", "mysql.connector", "MySQLdb")
NAME = "pymysqllock-fence-stress"
URL_ENV = "PYMYSQLLOCK_FENCE_STRESS_URL"
#: Set for the harness's self-test (``--unguarded``): the write ignores the token.
UNGUARDED_ENV = "PYMYSQLLOCK_FENCE_STRESS_UNGUARDED"
#: Keepalive interval of the workers' locks.
REFRESH_INTERVAL = 0.25
#: Seconds the supervisor waits for a successor's accepted write before resuming anyway.
SUCCESSOR_WAIT = 10.0
#: Seconds the supervisor watches the log for a holder to pause before it skips this pause.
TARGET_WAIT = 2.0
#: With ``require_chaos``, the run goes on until a paused holder tried a stale write, for at
#: most this many times its duration.
CHAOS_CAP_FACTOR = 3.0
#: The share of pauses aimed at a holder at its work, before its write: the ones that make
#: stale writes. The others pause the holder wherever it is.
AT_WORK_SHARE = 0.75
#: The last record of a worker at its work, holding the lock, before its write.
AT_WORK = frozenset({"acquired"})
#: The last records of a worker holding the lock under the token of its last ``acquired``
#: record. (After ``cursor`` or ``cursor_lost`` it may be releasing, or holding anew under a
#: token not logged yet.)
HOLDING = frozenset({"acquired", "write_begin", "write", "cursor_begin"})
#: The records a worker writes; the supervisor's own (``stopped``, ``resumed``) name a worker too.
WORKER_KINDS = HOLDING | {"cursor", "cursor_lost"}
SHUTDOWN_GRACE = 30.0


def _log(fd: int, kind: str, **fields: Any) -> None:
    """One JSON line, one ``os.write`` on an ``O_APPEND`` file: records never interleave."""
    line = json.dumps({"kind": kind, "t": time.monotonic(), **fields}, separators=(",", ":"))
    os.write(fd, (line + "\n").encode())


_GUARDED = "UPDATE guarded SET fence = %s, writes = writes + 1 WHERE id = 1 AND fence <= %s"
_UNGUARDED = "UPDATE guarded SET fence = %s, writes = writes + 1 WHERE id = 1 AND %s > 0"


def _guarded_write(connection: Any, token: int, worker: str) -> bool:
    """The guarded write and its record, in one transaction; :returns: whether accepted."""
    cursor = connection.cursor()
    try:
        cursor.execute("START TRANSACTION")
        guard = _UNGUARDED if os.environ.get(UNGUARDED_ENV) else _GUARDED
        cursor.execute(guard, (token, token))
        accepted = cursor.rowcount == 1
        if accepted:
            cursor.execute("INSERT INTO accepted (token, worker) VALUES (%s, %s)", (token, worker))
        cursor.execute("COMMIT")
    finally:
        cursor.close()
    return bool(accepted)


# --------------------------------------------------------------------------- worker


def worker_main(worker: str, driver: str, log_path: str, stop_path: str) -> int:
    """One worker process; see the module docstring.

    It loops until ``stop_path`` exists, or its parent is gone (a supervisor killed before it
    could create the file must not leave workers running).
    """
    from PyMySQLLock import Locker, LockLostError
    from PyMySQLLock.config import parse_url
    from PyMySQLLock.drivers import resolve_adapter

    url = os.environ[URL_ENV]
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND)
    settings = parse_url(url)
    adapter = resolve_adapter(driver)
    kwargs = adapter.translate_options(settings.connect_kwargs)
    # The guard's connection: an ordinary driver connection, as another database would be.
    other = adapter.module.connect(autocommit=True, **kwargs)
    rng = random.Random()
    parent = os.getppid()
    with Locker.from_url(url, driver=driver) as locker:
        while not os.path.exists(stop_path) and os.getppid() == parent:
            lock = locker.lock(NAME, fencing=True, refresh_interval_secs=REFRESH_INTERVAL)
            if not lock.acquire(timeout=2):
                continue
            token = lock.token
            _log(fd, "acquired", worker=worker, token=token, conn=lock.connection_id)
            time.sleep(rng.uniform(0.0, 0.08))  # the work; a SIGSTOP usually lands here
            _log(fd, "write_begin", worker=worker, token=token)
            accepted = _guarded_write(other, token, worker)
            _log(fd, "write", worker=worker, token=token, accepted=accepted)
            _log(fd, "cursor_begin", worker=worker, token=token)
            try:
                with lock.cursor() as cursor:
                    cursor.execute(
                        "UPDATE guarded SET writes = writes + 1 WHERE id = 1 AND fence <= %s",
                        (token,),
                    )
                    _log(fd, "cursor", worker=worker, token=token, accepted=cursor.rowcount == 1)
            except LockLostError:
                _log(fd, "cursor_lost", worker=worker, token=token)
            lock.release()
    other.close()
    os.close(fd)
    return 0


# --------------------------------------------------------------------------- checker


@dataclass
class Report:
    """What the run found."""

    accepted: int = 0
    stale_attempts: int = 0
    stale_cursor_attempts: int = 0
    pauses: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        head = (
            f"{self.accepted} accepted writes, {self.pauses} paused holders, "
            f"{self.stale_attempts} stale writes on another connection and "
            f"{self.stale_cursor_attempts} on the holding session, all rejected"
        )
        if self.ok:
            return "OK: " + head
        return "FAILED: " + "; ".join(self.problems[:10]) + f" ({head.replace(', all', '')})"


def check(
    records: list[dict[str, Any]], accepted_tokens: list[int], *, require_chaos: bool
) -> Report:
    """Check the invariants (see the module docstring).

    :param records: the log's records.
    :param accepted_tokens: the ``accepted`` table's tokens in insertion order.
    :param require_chaos: fail a run in which no paused holder tried a stale write.
    """
    report = Report(accepted=len(accepted_tokens))
    for earlier, later in zip(accepted_tokens, accepted_tokens[1:]):
        if later <= earlier:
            report.problems.append(f"accepted token {later} after token {earlier}")
    # A write is stale when it began after its holder was resumed and a successor's write had
    # been accepted: the guard must refuse it. (Without a successor's write the guard cannot
    # know of the newer holder yet, and accepting the old token is still in order.)
    resumed: dict[int, float] = {}
    for record in records:
        if record["kind"] == "resumed":
            report.pauses += 1
            if record["successor_wrote"]:
                resumed[record["token"]] = record["t"]
        if record["kind"] == "error":
            report.problems.append(f"worker {record['worker']} raised {record['error']}")
    stale_begun: set[tuple[str, str, int]] = set()
    for record in records:
        token = record.get("token")
        if token not in resumed or record["t"] < resumed[token]:
            continue
        key = (record["worker"], token)
        if record["kind"] in ("write_begin", "cursor_begin"):
            stale_begun.add((record["kind"], *key))
        elif record["kind"] == "write" and ("write_begin", *key) in stale_begun:
            report.stale_attempts += 1
            if record["accepted"]:
                report.problems.append(f"a stale write with token {token} was accepted")
        elif record["kind"] in ("cursor", "cursor_lost") and ("cursor_begin", *key) in stale_begun:
            report.stale_cursor_attempts += 1
            if record["kind"] == "cursor":
                report.problems.append(f"a stale holder wrote through its session ({token})")
    if require_chaos and report.stale_attempts == 0:
        report.problems.append("no paused holder tried a stale write")
    return report


# --------------------------------------------------------------------------- supervisor


class _Database:
    def __init__(self, url: str) -> None:
        import pymysql

        from PyMySQLLock.config import parse_url

        settings = parse_url(url)
        self._conn = pymysql.connect(autocommit=True, **settings.connect_kwargs)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._conn.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    def close(self) -> None:
        self._conn.close()


def _prepare(db: _Database) -> None:
    db.query("DROP TABLE IF EXISTS guarded, accepted")
    db.query(
        "CREATE TABLE guarded (id INT PRIMARY KEY, fence BIGINT NOT NULL, writes BIGINT NOT NULL)"
        " ENGINE=InnoDB"
    )
    db.query("INSERT INTO guarded VALUES (1, 0, 0)")
    db.query(
        "CREATE TABLE accepted (seq BIGINT AUTO_INCREMENT PRIMARY KEY, token BIGINT NOT NULL,"
        " worker VARCHAR(16) NOT NULL) ENGINE=InnoDB"
    )


def _records(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


class _Follower:
    """Reads the log as it grows: its records, and each worker's last and last ``acquired``."""

    def __init__(self, path: str) -> None:
        self._handle = open(path, encoding="utf-8")  # noqa: SIM115 - closed by close()
        self._partial = ""
        self.records: list[dict[str, Any]] = []
        self.last: dict[str, dict[str, Any]] = {}
        self.acquired: dict[str, dict[str, Any]] = {}

    def update(self) -> None:
        text = self._partial + self._handle.read()
        lines = text.split("\n")
        self._partial = lines.pop()
        for line in lines:
            record = json.loads(line)
            self.records.append(record)
            if record["kind"] in WORKER_KINDS:
                self.last[record["worker"]] = record
            if record["kind"] == "acquired":
                self.acquired[record["worker"]] = record

    def stale_attempts(self) -> int:
        """Stale writes tried so far, counted as :func:`check` counts them."""
        return check(self.records, [], require_chaos=False).stale_attempts

    def close(self) -> None:
        self._handle.close()


def _stopped(pid: int, timeout: float = 2.0) -> bool:
    """Wait until the kernel shows ``pid`` stopped (SIGSTOP is delivered asynchronously)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            # The state follows the parenthesised command name, which may contain spaces.
            if stat.read().rpartition(")")[2].split()[0] == "T":
                return True
        time.sleep(0.001)
    return False


def _holder(db: _Database) -> int | None:
    value = db.query("SELECT IS_USED_LOCK(%s)", (NAME,))[0][0]
    return None if value is None else int(value)


def _freeze(
    db: _Database,
    follower: _Follower,
    procs: dict[str, Any],
    kinds: frozenset[str],
    until: float,
) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
    """Stop the holder once its last record is of one of ``kinds``.

    :returns: the worker, its last record and its ``acquired`` record, or ``None`` when no
        holder was caught so within :data:`TARGET_WAIT` (or before ``until``).
    """
    give_up = min(time.monotonic() + TARGET_WAIT, until)
    while time.monotonic() < give_up:
        follower.update()
        waiting = {
            worker: last
            for worker, last in follower.last.items()
            if last["kind"] in kinds and procs[worker].poll() is None
        }
        holder = _holder(db) if waiting else None
        for worker, last in waiting.items():
            hold = follower.acquired[worker]
            if hold["conn"] != holder:
                continue  # e.g. resumed from a pause and not holding any more
            proc = procs[worker]
            proc.send_signal(signal.SIGSTOP)
            # Frozen now, the process can neither log nor release: if its last record is still
            # the one seen and its session still holds the lock, it is frozen in that state.
            if _stopped(proc.pid):
                follower.update()
                if follower.last[worker] is last and _holder(db) == holder:
                    return worker, last, hold
            proc.send_signal(signal.SIGCONT)
        time.sleep(0.002)
    return None


def _pause_one(
    db: _Database,
    follower: _Follower,
    fd: int,
    procs: dict[str, Any],
    rng: Any,
    kinds: frozenset[str],
    until: float,
) -> None:
    """Freeze a holder (in a state of ``kinds``) past its loss, wait for a successor's write,
    resume it; waits end at ``until``, the end of the run at the latest."""
    frozen = _freeze(db, follower, procs, kinds, until)
    if frozen is None:
        return
    worker, last, hold = frozen
    db.query("KILL CONNECTION %s", (hold["conn"],))
    _log(fd, "stopped", worker=worker, token=hold["token"], conn=hold["conn"])
    # Frozen between its UPDATE and COMMIT, the holder keeps the guarded row locked, and no
    # successor can write until it is resumed: waiting for one would only stall the run.
    wait = 0.0 if last["kind"] == "write_begin" else SUCCESSOR_WAIT
    deadline = min(time.monotonic() + wait, until)
    while True:
        newest = db.query("SELECT MAX(token) FROM accepted")[0][0]
        successor_wrote = newest is not None and newest > hold["token"]
        if successor_wrote or time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, 2 * REFRESH_INTERVAL))  # sometimes past loss detection
    _log(fd, "resumed", worker=worker, token=hold["token"], successor_wrote=successor_wrote)
    procs[worker].send_signal(signal.SIGCONT)


def chaos_over(
    elapsed: float, duration: float, *, require_chaos: bool, stale_attempts: int
) -> bool:
    """Whether the supervisor ends the run: at ``duration`` seconds, or with ``require_chaos``
    once a stale write was tried, but at :data:`CHAOS_CAP_FACTOR` times ``duration`` anyway
    (the run then fails its coverage requirement in :func:`check`).

    The workers finish the holds they are in after it: a holder resumed last still writes.
    """
    if elapsed >= duration * CHAOS_CAP_FACTOR:
        return True
    return elapsed >= duration and (not require_chaos or stale_attempts > 0)


@contextlib.contextmanager
def _server(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from PyMySQLLock.testing import ThrowawayServer

    with ThrowawayServer() as server:
        yield server.url


def run(
    url: str | None,
    *,
    duration: float,
    workers: int,
    seed: int | None,
    require_chaos: bool,
    unguarded: bool = False,
) -> Report:
    """Run the stress against ``url`` (or a throwaway server); :returns: the report.

    With ``unguarded`` the writes ignore the token: the run must then fail (a self-test).
    """
    rng = random.Random(seed)
    with _server(url) as target, tempfile.TemporaryDirectory(prefix="fence-stress-") as tmp:
        db = _Database(target)
        _prepare(db)
        log_path = os.path.join(tmp, "log.jsonl")
        stop_path = os.path.join(tmp, "stop")
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        start = time.monotonic()
        cap = start + duration * CHAOS_CAP_FACTOR
        env = {**os.environ, URL_ENV: target}
        if unguarded:
            env[UNGUARDED_ENV] = "1"
        procs: dict[str, subprocess.Popen[bytes]] = {}
        try:
            for number in range(workers):
                worker = f"w{number}"
                driver = DRIVERS[number % len(DRIVERS)]
                procs[worker] = subprocess.Popen(
                    [sys.executable, __file__, "--worker", worker, driver, log_path, stop_path],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
            follower = _Follower(log_path)
            while True:
                time.sleep(rng.uniform(0.3, 1.0))
                follower.update()
                if chaos_over(
                    time.monotonic() - start,
                    duration,
                    require_chaos=require_chaos,
                    stale_attempts=follower.stale_attempts(),
                ):
                    break
                kinds = AT_WORK if rng.random() < AT_WORK_SHARE else HOLDING
                _pause_one(db, follower, fd, procs, rng, kinds, cap)
            Path(stop_path).touch()
            follower.close()
            for worker, proc in procs.items():
                try:
                    _, err = proc.communicate(timeout=SHUTDOWN_GRACE)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    _, err = proc.communicate()
                if proc.returncode != 0:
                    tail = err.decode(errors="replace").strip().splitlines()[-3:]
                    _log(fd, "error", worker=worker, error=" | ".join(tail) or proc.returncode)
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGCONT)
                    proc.kill()
                    proc.wait()
            os.close(fd)
        tokens = [int(row[0]) for row in db.query("SELECT token FROM accepted ORDER BY seq")]
        db.query("DROP TABLE IF EXISTS guarded, accepted")
        db.close()
        records = _records(log_path)
        if os.environ.get("FENCE_STRESS_KEEP"):
            Path(os.environ["FENCE_STRESS_KEEP"]).write_text(json.dumps(records))
        return check(records, tokens, require_chaos=require_chaos)


def main(argv: list[str] | None = None) -> int:
    """Command line; see the module docstring."""
    args_list = sys.argv[1:] if argv is None else argv
    if args_list[:1] == ["--worker"]:
        worker, driver, log_path, stop_path = args_list[1:5]
        return worker_main(worker, driver, log_path, stop_path)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--duration",
        type=float,
        default=180.0,
        help=(
            "seconds (default 180); with --require-chaos, up to"
            f" {CHAOS_CAP_FACTOR:g} times as long until a stale write was tried"
        ),
    )
    parser.add_argument("--workers", type=int, default=6, help="worker processes (default 6)")
    parser.add_argument("--server-url", help="mysql://user:pw@host:port/db (default: throwaway)")
    parser.add_argument("--seed", type=int, help="seed of the supervisor's choices")
    parser.add_argument(
        "--require-chaos", action="store_true", help="fail a run without a stale write tried"
    )
    parser.add_argument(
        "--unguarded", action="store_true", help="self-test: writes ignore the token (must fail)"
    )
    args = parser.parse_args(args_list)
    report = run(
        args.server_url,
        duration=args.duration,
        workers=args.workers,
        seed=args.seed,
        require_chaos=args.require_chaos,
        unguarded=args.unguarded,
    )
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""A short run of the fencing stress (``tests/fence_stress.py``), and tests of its checker.

The full run is ``make stress-fencing`` (three minutes); here it runs for about 10 s with three
workers (one per driver) on the session server, longer (30 s at most) on a machine so slow that
no paused holder has tried a stale write by then, then once more with writes that ignore the
token, which must fail, so that a harness unable to see a stale write fails here.
"""

from __future__ import annotations

from typing import Any

import fence_stress
import pytest

pytestmark = [pytest.mark.stress, pytest.mark.slow]


def _url(server: Any) -> str:
    kwargs = server.connect_kwargs()
    password = f":{kwargs['password']}" if kwargs["password"] else ""
    return (
        f"mysql://{kwargs['user']}{password}@{kwargs['host']}:{kwargs['port']}/{kwargs['database']}"
    )


def test_checker_accepts_rejected_stale_writes() -> None:
    records = [
        {"kind": "resumed", "t": 2.0, "worker": "w0", "token": 5, "successor_wrote": True},
        {"kind": "write_begin", "t": 2.1, "worker": "w0", "token": 5},
        {"kind": "write", "t": 2.2, "worker": "w0", "token": 5, "accepted": False},
        {"kind": "cursor_begin", "t": 2.25, "worker": "w0", "token": 5},
        {"kind": "cursor_lost", "t": 2.3, "worker": "w0", "token": 5},
    ]
    report = fence_stress.check(records, [4, 6, 9], require_chaos=True)
    assert report.ok, report.summary()
    assert (report.stale_attempts, report.stale_cursor_attempts, report.pauses) == (1, 1, 1)


def test_checker_reports_an_accepted_stale_write_and_tokens_out_of_order() -> None:
    records = [
        {"kind": "resumed", "t": 2.0, "worker": "w0", "token": 5, "successor_wrote": True},
        {"kind": "write_begin", "t": 2.1, "worker": "w0", "token": 5},
        {"kind": "write", "t": 2.2, "worker": "w0", "token": 5, "accepted": True},
        {"kind": "cursor_begin", "t": 2.25, "worker": "w0", "token": 5},
        {"kind": "cursor", "t": 2.3, "worker": "w0", "token": 5, "accepted": True},
    ]
    report = fence_stress.check(records, [6, 5], require_chaos=False)
    assert len(report.problems) == 3, report.problems


def test_checker_excuses_a_write_begun_before_the_pause_and_one_without_successor() -> None:
    records = [
        {"kind": "write_begin", "t": 1.0, "worker": "w0", "token": 5},
        {"kind": "resumed", "t": 2.0, "worker": "w0", "token": 5, "successor_wrote": True},
        {"kind": "write", "t": 2.2, "worker": "w0", "token": 5, "accepted": True},
        {"kind": "cursor_begin", "t": 1.1, "worker": "w0", "token": 5},
        {"kind": "cursor", "t": 2.3, "worker": "w0", "token": 5, "accepted": True},
        {"kind": "resumed", "t": 3.0, "worker": "w1", "token": 7, "successor_wrote": False},
        {"kind": "write_begin", "t": 3.1, "worker": "w1", "token": 7},
        {"kind": "write", "t": 3.2, "worker": "w1", "token": 7, "accepted": True},
    ]
    report = fence_stress.check(records, [5, 7], require_chaos=True)
    assert report.problems == ["no paused holder tried a stale write"]


def test_the_supervisor_ends_the_run_once_the_required_chaos_happened_or_at_its_cap() -> None:
    def over(elapsed: float, *, require_chaos: bool = True, stale_attempts: int = 0) -> bool:
        return fence_stress.chaos_over(
            elapsed, 10.0, require_chaos=require_chaos, stale_attempts=stale_attempts
        )

    assert not over(9.0, stale_attempts=3)
    assert over(10.0, stale_attempts=1)
    assert not over(10.0)
    assert not over(29.0)
    assert over(30.0)
    assert over(10.0, require_chaos=False)


@pytest.mark.timeout(120)
def test_short_fencing_stress_run(server: Any) -> None:
    report = fence_stress.run(_url(server), duration=10.0, workers=3, seed=15, require_chaos=True)
    assert report.ok, report.summary()


@pytest.mark.timeout(120)
def test_unguarded_writes_make_the_run_fail(server: Any) -> None:
    report = fence_stress.run(
        _url(server), duration=6.0, workers=3, seed=15, require_chaos=True, unguarded=True
    )
    assert not report.ok
    assert any("stale write" in problem or "after token" in problem for problem in report.problems)

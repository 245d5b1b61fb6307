"""PyMySQLLock's benchmark suite: ``python -m benchmarks`` (``make bench``).

Every figure is measured side by side with its baselines in the same run, on a private
throwaway MariaDB server (and private Redis and PostgreSQL servers for the peer libraries),
repeated several times; the median over the repetitions is reported. ``--help`` lists the
options; ``RESULTS.rst`` holds the table of the reference run.

One module per benchmark:

* :mod:`benchmarks.cycle`: uncontended acquire+release against the raw driver loop.
* :mod:`benchmarks.handoff`: release in one process to acquire returning in another.
* :mod:`benchmarks.scale`: 1,000 locks held by one process.
* :mod:`benchmarks.contention`: 16 threads and 4 processes on one name.
* :mod:`benchmarks.lost`: how soon a killed session or a hung server is noticed.
* :mod:`benchmarks.windows`: the detection window of every fault by refresh interval, next to
  its documented bound.
* :mod:`benchmarks.profile`: where the library's own time goes in the uncontended cycle.
"""

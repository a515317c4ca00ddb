"""steadyhand's benchmark suite, side by side with DBOS Transact and pgqueuer (issue 7).

Run it with `make bench` (or `python -m bench.run --help`); results are appended to
bench/RESULTS.md. Benchmarks are not tests: `tests/bench` only smoke-runs them with tiny N.
"""

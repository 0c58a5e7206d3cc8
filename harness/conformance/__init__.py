"""The conformance suite: checks any backend plugin can run against itself.

    pytest -p harness.conformance.plugin --pyargs harness.conformance --bench-backend NAME

NAME is a registered backend name (built in or from an entry point) or a class
reference "module:Class". The checks run in-process on small subsets: the
declared contract, the weight layouts, initial-loss and prediction parity with
harness/measure/reference.py, the optimizer update rules, learning through
harness.cell.worker.run_cell, one cell in a worker subprocess, sync honesty, no
compilation after the first epoch, and determinism. See docs/plugin-guide.md.
"""

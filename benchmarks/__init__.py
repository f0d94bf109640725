"""The benchmark harness: ``python -m benchmarks`` (see ``benchmarks/README.md``).

Not part of the test suite: it prints figures, it asserts nothing.
"""

"""The contenders, each a module run in its own fresh process (``python -m ...``).

Each reads the same arguments (``_common.py``), runs the workload against the simulator,
and prints one ``BENCH-RESULT {json}`` line: makespan, CPU time and peak RSS of its own
process, measured with ``resource.getrusage(RUSAGE_SELF)``.
"""

"""riverbed's benchmark harness: ``python -m benchmarks`` (see benchmarks/README.md).

Runs the workloads of ``benchmarks.md`` on riverbed's local engine beside the baselines
(the plain Python loop, a naive asyncio pipeline, Bytewax) in one process, checks every
result, and prints a table of events per second, ratios and memory.
"""

"""Simulated hosts: daphne processes each in a network namespace with a CPU quota, behind nginx.

`python -m bench.hosts --help`; docs/performance.md, "Simulated hosts".
"""

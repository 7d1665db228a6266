"""The lab's experiments and the one loop that runs their cells.

base.py      what an experiment is (the interface) and what a cell's run returns
loop.py      the one cell loop: progress, resume, interrupt, clean-up, writing rows
registry.py  the experiments by name: the one place to add one
tcp/         the concurrent TCP file server: cells.py (matrix section, pure), rows.py (its tables, pure),
             experiment.py (one cell on the lab)
udp/         one UDP sender, two receivers: the same three modules
bench.py     the benchmark: the server's goodput against the machine's limits

This package's __init__ imports nothing, so the report can use the pure
modules (tcp/rows.py, udp/rows.py) without loading the Docker side.
"""

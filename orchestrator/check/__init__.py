"""``orchestrate.py check DIR ...``: a conformance suite against students' own servers, in the real lab.

cases.py    the results of a check: cases, scores, Gradescope's results.json, check.md, the class table (pure)
run.py      one submission's check on the lab: its server in each pool mode, the probe from alpine-2,
            the resource cases measured inside the server's container, one reference cell's throughput
"""

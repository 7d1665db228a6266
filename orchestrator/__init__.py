"""Host-side orchestrator of progjar-lab.

Layers, each in its own module:

* pure logic, testable without Docker or sockets:
  ``settings`` (.env and environment), ``matrix`` (experiment files),
  ``summary`` (statistics and tables);
* the Docker backend: ``compose`` (drives the real Compose CLI),
  ``images`` (node image and its base), ``nodes`` (finds containers by
  label, runs commands in them, copies results out);
* ``runner`` runs a matrix cell by cell on a running lab;
* ``cli`` is the command line (``orchestrate.py``), and only it prints
  errors and picks exit codes.
"""

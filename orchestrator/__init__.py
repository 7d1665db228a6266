"""Host-side orchestrator of progjar-lab.

Layers, each in its own module:

* pure logic, testable without Docker or sockets:
  ``settings`` (.env and environment), ``matrix`` (experiment files),
  ``summary`` (statistics and tables);
* ``lab``, everything that talks to Docker: the ``Lab`` interface
  and its Compose backend (finds containers by label, runs commands in
  them, copies results out), the node image, telemetry, environment facts;
* ``runner`` runs a matrix cell by cell on a running lab;
* ``cli`` is the command line (``orchestrate.py``), and only it prints
  errors and picks exit codes.
"""

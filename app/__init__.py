"""Programs that run inside the lab's nodes (standard library only).

Run each one as a module, inside a node or on a bare host:

    python -m app.fileserver      TCP file server (thread or process pool)
    python -m app.stress_client   concurrent upload/download stress client
    python -m app.genfile         deterministic test files, cached
    python -m app.probe           wait until a TCP port accepts connections
"""

"""The TCP file-server experiment: cells.py (pure), rows.py (pure), experiment.py (on the lab)."""

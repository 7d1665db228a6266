"""The UDP experiment: cells.py (pure), rows.py (pure), experiment.py (on the lab)."""

"""The lab's experiments, by name: the one place to add an experiment.

An experiment is one module with a subclass of ``experiments.base.Experiment``;
adding its class to ``EXPERIMENTS`` makes its matrix section, its
``--experiment`` choice, its cells in `orchestrate.py` runs (with progress,
resume, repeats and shuffling) and its tables in the summary.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.experiments.base import Experiment
from orchestrator.experiments.bench import BenchExperiment
from orchestrator.experiments.tcp.experiment import TcpExperiment
from orchestrator.experiments.udp.experiment import UdpExperiment
from orchestrator.matrix import Matrix, SectionParser
from orchestrator.matrix import load_matrix as load_with
from orchestrator.matrix import parse_matrix as parse_with

EXPERIMENTS: dict[str, type[Experiment]] = {
    experiment.name: experiment for experiment in (TcpExperiment, UdpExperiment, BenchExperiment)
}


def in_matrix() -> dict[str, type[Experiment]]:
    """The experiments a matrix file has sections for, in the order a run runs them."""
    return {name: experiment for name, experiment in EXPERIMENTS.items() if experiment.in_matrix}


def section_parsers() -> dict[str, SectionParser]:
    return {name: experiment.parse for name, experiment in in_matrix().items()}


def parse_matrix(data: object, name: str) -> Matrix:
    """A matrix file's parsed YAML, validated with every registered experiment's section."""
    return parse_with(data, name, section_parsers())


def load_matrix(spec: str, builtin_dir: Path) -> Matrix:
    """A built-in matrix by name (``quick``, ``full``) or a YAML file by path, with the registered sections."""
    return load_with(spec, builtin_dir, section_parsers())

"""Exceptions of the orchestrator. The CLI turns each into a message and an exit code."""


class LabError(Exception):
    """Base class: something the user can act on, with a message that says what."""

    exit_code = 1


class DockerUnavailable(LabError):
    """The Docker engine or the Compose CLI cannot be reached."""


class ComposeError(LabError):
    """A `docker compose` command failed."""


class ImageError(LabError):
    """The node image or its base could not be built."""


class NodeError(LabError):
    """A lab node is missing, stopped or a command in it failed."""


class MatrixError(LabError):
    """An experiment matrix file is missing or invalid."""

    exit_code = 2


class UsageError(LabError):
    """A bad command-line value (for example an unsafe run id)."""

    exit_code = 2


class SettingsError(LabError):
    """A setting in ``.env`` or the environment has a value the lab cannot use."""

    exit_code = 2

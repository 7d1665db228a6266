"""Drive the real Compose CLI (``docker compose`` v2, or ``docker-compose`` v1).

Compose owns the topology (docker-compose.yml); this module never
re-implements it, it only calls the CLI with the right project and variables.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from functools import cache

from orchestrator.errors import ComposeError, DockerUnavailable, SettingsError
from orchestrator.settings import Settings

COMPOSE_CHOICES = ("auto", "v1", "v2")


@cache
def compose_command(choice: str = "auto") -> tuple[str, ...]:
    """The Compose CLI to use: ``v2`` the Docker CLI plugin, ``v1`` the ``docker-compose`` binary,
    ``auto`` (``PROGJAR_COMPOSE``'s default) the plugin if it works, else the binary."""
    if choice not in COMPOSE_CHOICES:
        raise SettingsError(f"PROGJAR_COMPOSE must be one of {', '.join(COMPOSE_CHOICES)}, not {choice!r}")
    if choice in ("auto", "v2") and shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ("docker", "compose")
    if choice in ("auto", "v1") and shutil.which("docker-compose"):
        return ("docker-compose",)
    wanted = {
        "auto": "neither `docker compose` nor `docker-compose` works",
        "v1": "PROGJAR_COMPOSE=v1 but `docker-compose` is not installed",
        "v2": "PROGJAR_COMPOSE=v2 but `docker compose` does not work",
    }[choice]
    raise DockerUnavailable(
        f"Docker Compose is not usable: {wanted}.\n"
        "Install the Compose plugin (or the docker-compose package), or set PROGJAR_COMPOSE to the one you have."
    )


def settings_compose_command(settings: Settings) -> tuple[str, ...]:
    """The Compose CLI chosen by ``PROGJAR_COMPOSE`` (``.env`` or the environment)."""
    return compose_command(settings.env.get("PROGJAR_COMPOSE") or "auto")


class Compose:
    """One Compose project: the lab in ``settings.root``."""

    def __init__(self, settings: Settings, after_up: Callable[[Sequence[str]], None] | None = None) -> None:
        self.settings = settings
        self.after_up = after_up  # sees the services just started (all: empty)
        # The node image's base is part of every service's configuration, so
        # every call must pass the same one: otherwise Compose sees a changed
        # configuration and recreates containers that did not need it.
        self.base_image = settings.base_image or ""

    def run(self, args: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 900) -> str:
        """Run ``compose -p PROJECT ARGS``; return its output or raise ComposeError."""
        command = [*settings_compose_command(self.settings), "-p", self.settings.project, *args]
        full_env = {**self.settings.env, **(env or {})}
        if self.base_image:
            full_env["PROGJAR_BASE_IMAGE"] = self.base_image
        try:
            done = subprocess.run(
                command,
                cwd=self.settings.root,
                env=full_env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise ComposeError(f"`{' '.join(command)}` did not finish in {timeout:g}s") from None
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
            raise ComposeError(f"`{' '.join(command)}` failed (exit {done.returncode}):\n{tail}")
        return done.stdout

    def up(self, services: Sequence[str] = (), env: Mapping[str, str] | None = None, recreate: bool = False) -> None:
        """Start services (all by default) in the background, without building."""
        args = ["up", "-d", "--no-build"]
        if recreate:
            args += ["--force-recreate", "--no-deps"]
        self.run([*args, *services], env=env)
        if self.after_up:
            self.after_up(services)

    def down(self) -> None:
        """Remove the lab's containers, network and volumes."""
        self.run(["down", "--volumes", "--remove-orphans", "--timeout", "10"])

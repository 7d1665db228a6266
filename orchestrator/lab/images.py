"""The node image's base: the official Python image, or one made from Debian's packages.

Choice, first that works:

1. ``PROGJAR_BASE_IMAGE`` (environment or ``.env``), used as given;
2. the official ``python:3.12-slim``, already present or pulled now;
3. ``progjar-base:bookworm``, already present or built now by
   ``images/build-base.sh`` (mmdebstrap/debootstrap -> ``docker import``).

So a laptop simply pulls the official image, and a machine without a
registry builds its own base once, automatically.

The node image itself is built here through the Docker API, not by
``compose build``: Compose v2 builds with BuildKit and gives every build a new
image id even when every layer is cached, which would make Compose recreate
all three nodes on each call. The API's builder gives the same id for the
same inputs, whichever Compose is installed.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import docker
import docker.errors
import requests

from orchestrator.errors import ImageError
from orchestrator.settings import DEFAULT_BASE_IMAGE, LOCAL_BASE_IMAGE, Settings


def _present(client: docker.DockerClient, name: str) -> bool:
    try:
        client.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False


def _pull(client: docker.DockerClient, name: str) -> bool:
    repository, _, tag = name.partition(":")
    try:
        client.images.pull(repository, tag=tag or "latest")
        return True
    except docker.errors.APIError:
        return False


def build_local_base(settings: Settings, say: Callable[[str], None]) -> None:
    """Run images/build-base.sh; raise ImageError with its output on failure."""
    script = settings.root / "images" / "build-base.sh"
    say(f"building {LOCAL_BASE_IMAGE} from Debian's packages (about a minute, once)")
    try:
        done = subprocess.run(["bash", str(script), LOCAL_BASE_IMAGE], capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired:
        raise ImageError(
            f"building {LOCAL_BASE_IMAGE} took more than 30 minutes; is Debian's mirror reachable?"
        ) from None
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-10:])
        raise ImageError(
            f"could not pull {DEFAULT_BASE_IMAGE} and could not build {LOCAL_BASE_IMAGE}:\n{tail}\n"
            "Install mmdebstrap (apt-get install mmdebstrap) or set PROGJAR_BASE_IMAGE to a Python >= 3.11 image."
        )


def resolve_base_image(client: docker.DockerClient, settings: Settings, say: Callable[[str], None]) -> str:
    """Name of a base image that exists locally (pulling or building one if needed)."""
    if settings.base_image:
        return settings.base_image
    if _present(client, DEFAULT_BASE_IMAGE):
        return DEFAULT_BASE_IMAGE
    say(f"pulling {DEFAULT_BASE_IMAGE}")
    if _pull(client, DEFAULT_BASE_IMAGE):
        return DEFAULT_BASE_IMAGE
    if _present(client, LOCAL_BASE_IMAGE):
        say(f"no registry reachable; using the local base {LOCAL_BASE_IMAGE}")
        return LOCAL_BASE_IMAGE
    say(f"no registry reachable for {DEFAULT_BASE_IMAGE}")
    build_local_base(settings, say)
    return LOCAL_BASE_IMAGE


BUILD_TIMEOUT = 1800  # seconds: a first build installs Debian packages


def build_node_image(client: docker.DockerClient, settings: Settings, base: str) -> str:
    """Build ``images/Dockerfile`` on ``base`` as ``settings.image``; return the image id."""
    try:
        image, _ = client.images.build(
            path=str(settings.root),
            dockerfile="images/Dockerfile",
            tag=settings.image,
            buildargs={"BASE_IMAGE": base},
            rm=True,
            forcerm=True,
            timeout=BUILD_TIMEOUT,
        )
    except docker.errors.BuildError as exc:
        lines = [str(entry.get("stream") or entry.get("error") or "").strip() for entry in exc.build_log]
        tail = "\n".join(line for line in lines if line)[-2000:]
        raise ImageError(f"building the node image {settings.image} on {base} failed: {exc.msg}\n{tail}") from None
    except docker.errors.APIError as exc:
        raise ImageError(f"building the node image {settings.image} failed: {exc.explanation or exc}") from None
    except requests.exceptions.RequestException as exc:  # e.g. a first build on a slow package mirror
        raise ImageError(f"building the node image {settings.image} did not finish: {exc}") from None
    return str(image.id)

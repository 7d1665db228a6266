"""The node image: built through the Docker API, the same id for the same inputs.

Compose v2 (BuildKit) gives every build a new id, so building with it made
Compose recreate all three nodes on every call; the lab builds the image itself.
"""

import docker

from orchestrator.lab import ComposeLab


def test_a_second_build_gives_the_same_image_and_keeps_the_nodes(lab: ComposeLab):
    client = docker.from_env()
    nodes_before = {c.id for c in lab._containers()}
    first = client.images.get(lab.settings.image).id
    lab.build()
    assert client.images.get(lab.settings.image).id == first
    lab.up()  # what every orchestrate.py call does first
    assert {c.id for c in lab._containers()} == nodes_before, "the nodes were recreated"

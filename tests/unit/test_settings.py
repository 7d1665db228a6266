from orchestrator.settings import load_settings, parse_env_file


def test_parse_env_file(tmp_path):
    env = tmp_path / ".env"
    env.write_text("# comment\nA=1\nexport B=two\nC='quoted value'\nbroken line\n\nD=\"x\"\n")
    assert parse_env_file(env) == {"A": "1", "B": "two", "C": "quoted value", "D": "x"}


def test_env_file_is_read_as_compose_reads_it(tmp_path):
    # Compose drops an unquoted value's trailing comment and keeps a quoted '#'.
    env = tmp_path / ".env"
    env.write_text('PROGJAR_NET_PREFIX=172.16.40 # my subnet\nPROGJAR_NETWORK="lab # one"\nE=a#b\n')
    assert parse_env_file(env) == {"PROGJAR_NET_PREFIX": "172.16.40", "PROGJAR_NETWORK": "lab # one", "E": "a#b"}
    settings = load_settings(tmp_path, {})
    assert settings.address("alpine-1") == "172.16.40.101"
    assert settings.network == "lab # one"


def test_environment_overrides_env_file(tmp_path):
    (tmp_path / ".env").write_text("COMPOSE_PROJECT_NAME=from-file\nPROGJAR_NET_PREFIX=10.9.9\n")
    settings = load_settings(tmp_path, {"PROGJAR_NET_PREFIX": "172.16.30"})
    assert settings.project == "from-file"
    assert settings.address("alpine-1") == "172.16.30.101"
    assert settings.base_image is None


def test_defaults_without_env_file(tmp_path):
    settings = load_settings(tmp_path, {})
    assert (settings.project, settings.address("alpine-1")) == ("progjar-lab", "172.16.16.101")
    assert (settings.network, settings.image, settings.subnet) == (
        "progjar-network",
        "progjar-node:latest",
        "172.16.16.0/24",
    )

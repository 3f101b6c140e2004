"""Configuration: defaults < user file < project file (`glmtui init`) < GLMTUI_* variables."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import yaml
from helpers import BUSYBOX, docker_inspect, one_error_line, run_glmtui

from glmtui.config import Config
from glmtui.errors import BadInput


class Setup:
    """A user config folder and a project folder of the test's own; the CLI runs in the project."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.user_dir = root / "user-config"
        self.project = root / "project"
        self.project.mkdir()
        self.elsewhere = root / "elsewhere"
        self.elsewhere.mkdir()
        self.env = {"XDG_CONFIG_HOME": str(self.user_dir)}

    @property
    def user_file(self) -> Path:
        return self.user_dir / "glmtui" / "config.yaml"

    @property
    def project_file(self) -> Path:
        return self.project / ".glmtui" / "config.yaml"

    def __call__(self, *args: str, cwd: Path | None = None, env: dict | None = None):
        return run_glmtui(*args, env={**self.env, **(env or {})}, cwd=cwd or self.project)

    def get(self, key: str, **kwargs) -> str:
        result = self("config", "get", key, **kwargs)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def sources(self, **kwargs) -> dict:
        result = self("config", "get", "--json", **kwargs)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


@pytest.fixture
def cfg(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_defaults(cfg):
    assert cfg.get("resources.memory") == "1g"
    assert cfg.get("default_image") == "glmtui/workspace:latest"
    assert cfg.get("network") == "bridge"
    assert cfg.get("jobs") == "16"
    listing = cfg("config", "get")
    header, *rows = listing.stdout.splitlines()
    assert header.split() == ["KEY", "VALUE", "SOURCE"]
    assert any(r.split() == ["resources.memory", "1g", "default"] for r in rows)
    assert all(v["source"] == "default" for v in cfg.sources().values())
    assert cfg("config", "get", "resources").stdout.strip() == "{cpus: 2.0, memory: 1g, pids: 1024}"
    assert not cfg.user_file.exists(), "reading writes nothing"


def test_set_writes_the_user_file_0600(cfg):
    result = cfg("config", "set", "resources.memory", "2g")
    assert result.returncode == 0
    assert result.stdout.strip() == f"set resources.memory in {cfg.user_file}"
    assert mode_of(cfg.user_file) == 0o600
    assert yaml.safe_load(cfg.user_file.read_text()) == {"resources": {"memory": "2g"}}
    assert cfg.get("resources.memory") == "2g"
    assert cfg.sources()["resources.memory"] == {"value": "2g", "source": "user", "help": "memory limit of new environments"}
    # YAML values: numbers stay numbers, lists stay lists
    assert cfg("config", "set", "resources.pids", "64").returncode == 0
    assert cfg("config", "set", "providers.mine.stop", "[a, b]").returncode == 0
    data = yaml.safe_load(cfg.user_file.read_text())
    assert data["resources"] == {"memory": "2g", "pids": 64} and data["providers"]["mine"]["stop"] == ["a", "b"]
    assert json.loads(cfg("config", "get", "providers.mine", "--json").stdout) == {"stop": ["a", "b"]}
    assert mode_of(cfg.user_file) == 0o600


def test_project_overrides_user_and_variables_override_both(cfg):
    assert cfg("config", "set", "resources.memory", "2g").returncode == 0
    init = cfg("init")
    assert init.returncode == 0 and init.stdout.strip() == f"created {cfg.project_file}"
    assert mode_of(cfg.project_file) == 0o600
    assert cfg.get("resources.memory") == "2g", "an empty project file changes nothing"

    setting = cfg("config", "set", "--project", "resources.memory", "3g")
    assert setting.returncode == 0 and str(cfg.project_file) in setting.stdout
    assert mode_of(cfg.project_file) == 0o600
    assert cfg.get("resources.memory") == "3g"
    assert cfg.sources()["resources.memory"]["source"] == "project"
    sub = cfg.project / "src" / "deep"
    sub.mkdir(parents=True)
    assert cfg.get("resources.memory", cwd=sub) == "3g", "the project is found from its subfolders"
    assert cfg.get("resources.memory", cwd=cfg.elsewhere) == "2g"

    variables = {"GLMTUI_RESOURCES__MEMORY": "4g", "GLMTUI_NETWORK": "none"}
    assert cfg.get("resources.memory", env=variables) == "4g"
    assert cfg.get("network", env=variables) == "none"
    assert cfg.sources(env=variables)["resources.memory"] == {"value": "4g", "source": "env", "help": "memory limit of new environments"}
    assert cfg.get("resources.memory", env=variables, cwd=cfg.elsewhere) == "4g"
    assert cfg.get("resources.memory") == "3g"


def test_unset(cfg):
    cfg("config", "set", "resources.memory", "2g")
    cfg("config", "set", "theme", "nord")
    cfg("init")
    cfg("config", "set", "--project", "resources.memory", "3g")

    result = cfg("config", "unset", "--project", "resources.memory")
    assert (result.returncode, result.stdout.strip()) == (0, "resources.memory removed")
    assert cfg.get("resources.memory") == "2g"
    assert yaml.safe_load(cfg.project_file.read_text()) in ({}, None), "emptied mappings are dropped"
    again = cfg("config", "unset", "--project", "resources.memory")
    assert (again.returncode, again.stdout.strip()) == (0, "resources.memory was not set")

    assert cfg("config", "unset", "resources.memory").returncode == 0
    assert cfg.get("resources.memory") == "1g"
    assert yaml.safe_load(cfg.user_file.read_text()) == {"theme": "nord"}
    assert mode_of(cfg.user_file) == 0o600


def test_set_in_the_user_file_under_a_project_that_sets_the_key_says_which_file_wins(cfg):
    assert cfg("init").returncode == 0
    assert cfg("config", "set", "--project", "resources.memory", "3g").returncode == 0
    result = cfg("config", "set", "resources.memory", "2g")
    assert result.returncode == 0
    assert result.stdout.strip() == f"set resources.memory in {cfg.user_file}"
    assert one_error_line(result.stderr) == (
        f"glmtui: warning: here resources.memory is still 3g: the project file {cfg.project_file} sets it and wins "
        "over the user file (glmtui config set --project resources.memory 2g changes it for this project)")
    got = cfg("config", "get", "resources.memory")
    assert got.stdout.strip() == "3g"
    assert one_error_line(got.stderr) == f"glmtui: resources.memory is from the project file {cfg.project_file}"
    assert cfg("config", "get", "resources.memory", cwd=cfg.elsewhere).stdout.strip() == "2g"
    outside = cfg("config", "get", "resources.memory", cwd=cfg.elsewhere)
    assert one_error_line(outside.stderr) == f"glmtui: resources.memory is from the user file {cfg.user_file}"

    removed = cfg("config", "unset", "resources.memory")
    assert removed.stdout.strip() == "resources.memory removed"
    assert "still 3g: the project file" in one_error_line(removed.stderr)

    variables = {"GLMTUI_RESOURCES__MEMORY": "4g"}
    pinned = cfg("config", "set", "--project", "resources.memory", "5g", env=variables)
    assert pinned.returncode == 0
    assert one_error_line(pinned.stderr) == (
        "glmtui: warning: here resources.memory is still 4g: the variable GLMTUI_RESOURCES__MEMORY sets it and wins "
        "over every file")
    assert one_error_line(cfg("config", "get", "resources.memory", env=variables).stderr) == (
        "glmtui: resources.memory is from the variable GLMTUI_RESOURCES__MEMORY")
    quiet = cfg("config", "get", "network")
    assert (quiet.stdout.strip(), quiet.stderr) == ("bridge", ""), "a default needs no word"
    listing = cfg("config", "get").stdout
    assert f"user file: {cfg.user_file}" in listing and f"project file: {cfg.project_file}" in listing


def test_unknown_key_says_did_you_mean(cfg):
    for args in (
        ("config", "get", "resources.memroy"),
        ("config", "set", "resources.memroy", "2g"),
        ("config", "unset", "resources.memroy"),
    ):
        result = cfg(*args)
        assert result.returncode == 2, args
        line = one_error_line(result.stderr)
        assert "unknown config key 'resources.memroy'" in line and "did you mean 'resources.memory'?" in line
    far = cfg("config", "get", "zzzz")
    assert far.returncode == 2 and "did you mean" not in one_error_line(far.stderr)
    assert not cfg.user_file.exists(), "a failed set writes nothing"


def test_bad_values_are_refused_and_nothing_is_written(cfg):
    cfg("config", "set", "resources.memory", "2g")
    before = cfg.user_file.read_text()
    for key, value, message in (
        ("resources.memory", "lots", "'lots' is not a size"),
        ("network", "wifi", "'wifi' is not one of"),
        ("resources.cpus", "0", "out of range"),
        ("resources.pids", "many", "is not a whole number"),
        ("stop_timeout", "soon", "is not a duration"),
        ("jobs", "0", "must be above 0"),
        ("jobs", "300", "300 is more than 256"),
    ):
        result = cfg("config", "set", key, value)
        assert result.returncode == 2, key
        assert message in one_error_line(result.stderr), key
    assert cfg.user_file.read_text() == before


def test_bad_variable_and_bad_file(cfg):
    result = cfg("config", "get", "resources.memory", env={"GLMTUI_RESOURCES__MEMORY": "lots"})
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert "GLMTUI_RESOURCES__MEMORY" in line and "lots" in line

    cfg.user_file.parent.mkdir(parents=True)
    cfg.user_file.write_text("- just\n- a list\n")
    broken = cfg("config", "get", "network")
    assert broken.returncode == 2 and str(cfg.user_file) in one_error_line(broken.stderr)
    cfg.user_file.write_text("resources: {memory: [unclosed\n")
    broken = cfg("config", "get", "network")
    assert broken.returncode == 2 and str(cfg.user_file) in one_error_line(broken.stderr)
    cfg.user_file.write_text("resources:\n  memroy: 2g\n")
    typo = cfg("config", "get", "network")
    assert typo.returncode == 2 and "did you mean 'resources.memory'" in one_error_line(typo.stderr)


def test_project_scope_needs_init(cfg):
    result = cfg("config", "set", "--project", "network", "none")
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert "no project config here" in line and "glmtui init" in line
    assert not (cfg.project / ".glmtui").exists()


def test_init(cfg):
    first = cfg("init", "--image", BUSYBOX)
    assert first.returncode == 0
    assert yaml.safe_load(cfg.project_file.read_text()) == {"default_image": BUSYBOX}
    assert cfg.get("default_image") == BUSYBOX
    again = cfg("init")
    assert again.returncode == 2 and "exists already" in one_error_line(again.stderr)
    assert yaml.safe_load(cfg.project_file.read_text()) == {"default_image": BUSYBOX}


def test_load_in_process(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "user"))
    user_file = tmp_path / "user" / "glmtui" / "config.yaml"
    user_file.parent.mkdir(parents=True)
    user_file.write_text("resources:\n  cpus: 1.5\nproviders:\n  zai:\n    model: glm-4.6\n")
    project = tmp_path / "p"
    (project / ".glmtui").mkdir(parents=True)
    (project / ".glmtui" / "config.yaml").write_text("network: none\nresources: {cpus: 3}\n")
    config = Config.load(cwd=project, environ={"GLMTUI_STOP_TIMEOUT": "1m", "GLMTUI_UNKNOWN": "ignored"})
    assert config.get("resources.cpus") == 3.0 and config.sources["resources.cpus"] == "project"
    assert config.get("network") == "none"
    assert config.get("stop_timeout") == 60.0 and config.sources["stop_timeout"] == "env"
    assert config.get("resources.memory") == "1g" and config.sources["resources.memory"] == "default"
    assert config.providers() == {"zai": {"model": "glm-4.6"}}
    with pytest.raises(BadInput, match="did you mean 'network'"):
        config.get("netwrok")


def test_approval_settings_are_checked_and_text_that_is_not_yaml_is_one_error(cfg):
    good = cfg("config", "set", "approval_rules", '[{tool: bash, pattern: "pytest *", mode: auto}]', "--user")
    assert good.returncode == 0, good.stderr
    assert cfg("config", "get", "approval_rules").stdout.strip() == "[{mode: auto, pattern: pytest *, tool: bash}]"
    for value, said in (("not: [a list", "not YAML"), ("[{tool: bash, mode: maybe}]", "'maybe' is not one of"),
                        ("[{tool: bash}]", "is not a rule like")):
        bad = cfg("config", "set", "approval_rules", value, "--user")
        assert bad.returncode == 2 and said in one_error_line(bad.stderr), bad.stderr
    wrong = cfg("config", "set", "approval", "sometimes", "--user")
    assert wrong.returncode == 2 and "not one of auto, ask, deny" in one_error_line(wrong.stderr)
    assert cfg("config", "set", "theme", "a: [b", "--user").returncode == 0  # any text is a theme's name


def test_server_settings_are_checked(cfg):
    assert cfg("config", "get", "serve.plans").stdout.strip() == "[./plans]"
    assert cfg("config", "set", "serve.plans", "[plans, ~/more-plans]", "--user").returncode == 0
    assert cfg("config", "get", "serve.plans").stdout.strip() == "[plans, ~/more-plans]"
    good = cfg("config", "set", "serve.allow", "{network_host: true, host_paths: [{path: /srv/data, write: true}]}",
               "--user")
    assert good.returncode == 0, good.stderr
    for value, said in (("{netwrk_host: true}", "unknown key 'netwrk_host' (did you mean 'network_host'?)"),
                        ("{host_paths: [{path: data}]}", "'data' is not an absolute path"),
                        ("{root: yes please}", "serve.allow.root: true or false"),
                        ("[network_host]", "serve.allow: a mapping like")):
        bad = cfg("config", "set", "serve.allow", value, "--user")
        assert bad.returncode == 2 and said in one_error_line(bad.stderr), bad.stderr
    empty = cfg("config", "set", "serve.plans", "[]", "--user")
    assert empty.returncode == 2 and "serve.plans: a folder, or a list of folders" in one_error_line(empty.stderr)


# -- the configuration at work ----------------------------------------------------------------


@pytest.mark.docker
def test_config_shapes_new_environments(cfg, busybox_image, env_name):
    assert cfg("init", "--image", BUSYBOX).returncode == 0
    assert cfg("config", "set", "--project", "resources.memory", "300m").returncode == 0
    created = cfg("env", "create", env_name, env={"GLMTUI_RESOURCES__CPUS": "0.5", "GLMTUI_NETWORK": "none"})
    assert created.returncode == 0, created.stderr
    info = docker_inspect(env_name)
    assert info["Config"]["Image"] == BUSYBOX
    assert info["HostConfig"]["Memory"] == 300 * 1024**2
    assert info["HostConfig"]["NanoCpus"] == 500_000_000
    assert info["HostConfig"]["NetworkMode"] == "none"


@pytest.mark.docker
def test_docker_host_from_config(cfg):
    assert cfg("config", "set", "docker_host", "unix:///no/such/glmtui.sock").returncode == 0
    result = cfg("env", "list")
    assert result.returncode == 3
    assert "unix:///no/such/glmtui.sock" in one_error_line(result.stderr)
    assert cfg("env", "list", env={"GLMTUI_DOCKER_HOST": ""}).returncode == 0


def test_the_readme_table_lists_every_key_with_its_default():
    """README.md's configuration table: every key `glmtui config get` lists, with its default."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Configuration", 1)[1].split("\n### ", 1)[0]
    documented: dict[str, object] = {}
    for row in section.splitlines():
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        keys = [key.strip().strip("`") for key in cells[0].split(" / ")]
        defaults = [value.strip().strip("`") for value in cells[1].split(" / ")]
        prefix = next((open_ for open_ in ("providers.", "engines.") if keys[0].startswith(open_)), None)
        if prefix:  # named entries: their keys are documented per entry
            documented[prefix] = cells[1]
            continue
        assert len(keys) == len(defaults), row
        for key, default in zip(keys, defaults):
            documented[key] = None if default == "(none)" else yaml.safe_load(default)
    from glmtui.config import KEYS, OPEN_PREFIXES

    assert sorted(documented) == sorted([*KEYS, *OPEN_PREFIXES])
    assert {key: spec.default for key, spec in KEYS.items()} == {key: documented[key] for key in KEYS}

"""``pids:`` and ``network:`` in opsctl.yaml: validated with their key path; where a stage's setting comes from."""

from __future__ import annotations

import pytest

from opsctl.core.config import parse_config
from opsctl.errors import ConfigError


def _config(stages: dict):
    return parse_config({"project": "p", "executor": "docker", "images": {"app": {"ref": "x:1"}}, "stages": stages})


def test_pids_and_network_parse_and_merge_over_default():
    config = _config(
        {"default": {"image": "app", "pids": 512, "network": "bridge"}, "train": {"pids": 64, "network": "lab-net"}}
    )
    train = config.settings_for("train")
    assert (train.pids, train.network) == (64, "lab-net")
    other = config.settings_for("evaluate")
    assert (other.pids, other.network) == (512, "bridge")
    assert config.key_of("train", "network") == "stages.train.network"
    assert config.key_of("evaluate", "network") == "stages.default.network"


def test_pids_unset_means_the_executors_default():
    assert _config({"default": {"image": "app"}}).settings_for("s").pids is None


@pytest.mark.parametrize("value", [0, -1, "many", True, 1.5, "4096"])
def test_pids_must_be_a_positive_integer(value):
    with pytest.raises(ConfigError) as info:
        _config({"train": {"pids": value}})
    assert "stages.train.pids: expected a positive number of processes" in str(info.value)


@pytest.mark.parametrize("value", ["container:abc123", "my net", "", "-x", 5, ["bridge"], "host;rm -rf /"])
def test_network_must_be_a_builtin_or_a_network_name(value):
    with pytest.raises(ConfigError) as info:
        _config({"default": {"network": value}})
    message = str(info.value)
    assert "stages.default.network: expected none, bridge, host or the name of a network" in message


@pytest.mark.parametrize("value", ["none", "bridge", "host", "lab-net", "team_net.2"])
def test_network_accepts_builtins_and_names(value):
    assert _config({"s": {"network": value}}).stages["s"].network == value


def test_host_network_keys_lists_default_first():
    from opsctl.core.networks import host_network_keys

    config = _config({"zeta": {"network": "host"}, "default": {"network": "host"}, "a": {"network": "bridge"}})
    assert host_network_keys(config) == ["stages.default.network", "stages.zeta.network"]

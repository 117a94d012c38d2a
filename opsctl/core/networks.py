"""The networks stage containers join (``network:`` in ``opsctl.yaml``), checked before a run.

``none`` (the default), ``bridge`` and ``host`` are Docker's own; any other name must be a
network that exists in the engine (``docker network create NAME``). ``opsctl.yaml`` parsing
accepts only such names; whether the network exists can only be asked of the engine, so
:func:`check_stage_networks` does that before any container of a run starts. ``host`` works
but is warned about: the container then shares the host's network namespace, loopback
services (databases, admin ports bound to 127.0.0.1) included.
"""

from __future__ import annotations

from collections.abc import Iterable

from opsctl.core.config import BUILTIN_NETWORKS, DEFAULT_STAGE_KEY, ProjectConfig
from opsctl.errors import ConfigError

HOST = "host"


def host_network_warning(where: list[str]) -> str:
    """One line naming the stages (or ``opsctl.yaml`` keys) that run with ``network: host``."""
    return (
        f"network host for {', '.join(where)}: those containers share this machine's network, "
        "and reach every service listening on its loopback (127.0.0.1)"
    )


def host_network_keys(config: ProjectConfig) -> list[str]:
    """The ``opsctl.yaml`` keys that set ``network: host`` (``stages.default.network`` first)."""
    names = sorted(config.stages, key=lambda name: (name != DEFAULT_STAGE_KEY, name))
    return [f"stages.{name}.network" for name in names if config.stages[name].network == HOST]


def check_stage_networks(config: ProjectConfig, stages: Iterable[str]) -> list[str]:
    """The ``stages`` that run with ``network: host``. ConfigError (naming the key and the
    network) when a stage names a network the engine does not have; EngineUnavailableError
    when the engine cannot be asked."""
    from opsctl.adapters.docker import network_exists

    on_host: list[str] = []
    known: dict[str, bool] = {}
    for stage in stages:
        network = config.settings_for(stage).network or "none"
        if network == HOST:
            on_host.append(stage)
        if network in BUILTIN_NETWORKS:
            continue
        if network not in known:
            known[network] = network_exists(network)
        if not known[network]:
            raise ConfigError(
                f"opsctl.yaml: {config.key_of(stage, 'network')}: no Docker network named '{network}' (stage {stage})",
                hint=f"create it with `docker network create {network}`, or use none, bridge or host",
            )
    return on_host

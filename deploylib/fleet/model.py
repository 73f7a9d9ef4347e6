"""A fleet profile as the controller holds it: where the release comes from, the hosts, the rollout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..profile import CheckSpec, Profile

POLICIES = ("rollback_fleet", "isolate")


@dataclass(frozen=True)
class Rollout:
    parallel: int = 10
    batch: int | str | None = None  # a count, "25%", or None: every host in one batch
    canary: int = 0
    max_failures: int = 0
    confirm_timeout: float = 30.0

    def batches(self, names: list[str]) -> list[list[str]]:
        """The commit order: the canaries alone, then batches of `batch` hosts."""
        first, rest = names[:self.canary], names[self.canary:]
        size = len(rest) or 1
        if isinstance(self.batch, int):
            size = self.batch
        elif isinstance(self.batch, str):
            size = max(1, len(names) * int(self.batch.rstrip("%")) // 100)
        return ([first] if first else []) + [rest[i:i + size] for i in range(0, len(rest), size)]


@dataclass(frozen=True)
class Host:
    """One host: how ssh reaches it, and its profile (paths as the host sees them)."""

    name: str  # as written in deploy.yaml: an ssh alias or user@host[:port]
    destination: str  # what ssh connects to: alias or user@host
    port: int | None
    profile: Profile


@dataclass(frozen=True)
class Fleet:
    name: str
    config_path: Path
    local: Profile  # the source side on the controller: scanning, file validators, the controller's state
    hosts: tuple[Host, ...]
    rollout: Rollout
    on_host_failure: str
    ssh_config: Path | None
    ssh_options: tuple[str, ...]
    file_validators: tuple[CheckSpec, ...]  # run once on the controller, on the bytes every host gets

    @property
    def source(self) -> Path:
        return self.local.source

    @property
    def tool_prefix(self) -> str:
        return self.local.tool_prefix

    def host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)

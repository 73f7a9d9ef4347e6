"""Diff the source manifest against production into what a deploy will do, with a stable digest."""

from __future__ import annotations

import hashlib
from collections.abc import Container
from dataclasses import dataclass, field

from .manifest import Entry, Manifest


@dataclass
class Plan:
    """What a deploy changes in production's managed files."""

    added: list[Entry] = field(default_factory=list)
    changed: list[Entry] = field(default_factory=list)
    removed: list[Entry] = field(default_factory=list)
    unchanged: int = 0
    withheld: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)  # managed files edited (or deleted) in production by hand

    @property
    def size(self) -> int:
        """How many files the plan touches."""
        return len(self.added) + len(self.changed) + len(self.removed)

    @property
    def empty(self) -> bool:
        return self.size == 0

    @property
    def bytes_to_copy(self) -> int:
        return sum(e.size for e in self.added + self.changed)

    @property
    def digest(self) -> str:
        """Identifies exactly these changes: deploy --plan DIGEST refuses if anything differs.

        Paths are hashed as the filesystem's bytes (os.fsencode): a name that is not UTF-8 arrives as
        surrogate escapes, which plain .encode() refuses; UTF-8 names hash as they always did."""
        h = hashlib.sha256()
        for tag, entries in (("A", self.added), ("C", self.changed), ("R", self.removed)):
            for e in entries:
                h.update(f"{tag}\0{e.path}\0{e.sha256}\0{e.mode:o}\n".encode("utf-8", "surrogateescape"))
        return h.hexdigest()[:16]

    def summary(self) -> dict[str, object]:
        return {
            "added": [e.path for e in self.added],
            "changed": [e.path for e in self.changed],
            "removed": [e.path for e in self.removed],
            "withheld": self.withheld,
            "drift": self.drift,
            "counts": {"added": len(self.added), "changed": len(self.changed),
                       "removed": len(self.removed), "unchanged": self.unchanged},
            "bytes": self.bytes_to_copy,
            "sizes": {e.path: e.size for e in self.added + self.changed + self.removed},
            "digest": self.digest,
        }


def diff(source: Manifest, production: Manifest, deployed: Container[str]) -> Plan:
    """Plan turning production's managed files into the source's.

    Only files this tool deployed before (`deployed`) are ever removed: a file a
    user put in production is theirs, even if it matches the sync globs.
    """
    plan = Plan()
    for path, entry in source.items():
        current = production.get(path)
        if current is None:
            plan.added.append(entry)
        elif (current.sha256, current.mode, current.link) != (entry.sha256, entry.mode, entry.link):
            plan.changed.append(entry)
        else:
            plan.unchanged += 1
    plan.removed = [e for path, e in production.items() if path not in source and path in deployed]
    return plan


def drifted(deployed: Manifest, production: Manifest) -> list[str]:
    """Managed files whose production content is no longer what the tool deployed: edited or deleted by hand."""
    return sorted(path for path, entry in deployed.items()
                  if path not in production or production[path].sha256 != entry.sha256)

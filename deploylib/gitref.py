"""`deploy --ref REF`: the committed tree of REF, exported by git into a temporary directory.

Only git decides what REF holds (`git archive`, read-only on the repository): no working-tree
edit, untracked or ignored file can reach production. The directory lives in the system's
temporary directory, outside the source and production, and is removed when the deploy ends.
"""

from __future__ import annotations

import shutil
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .profile import clip
from .errors import ConfigError, PreflightFailed


@dataclass(frozen=True)
class ExportedRef:
    repo: Path  # the profile's source directory (inside the repository)
    ref: str  # as the user wrote it
    commit: str  # the full commit it resolved to
    tree: Path  # the temporary directory holding the ref's files for the source directory

    @property
    def origin(self) -> str:
        """Where the files come from, as people (and VERSION's deployed_from) name it."""
        return f"{self.repo} @ {self.ref}"

    def mask(self, text: str) -> str:
        """`text` with the export's paths named by where they come from (`<source> @ <ref>: path`): the
        temporary directory is gone once the deploy ends, so a message naming it points nowhere."""
        tree = str(self.tree)
        return text.replace(tree + "/", f"{self.origin}: ").replace(tree, self.origin) if tree in text else text


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"--ref: git could not run in {cwd} ({exc}); install git or deploy without --ref") from None


def resolve(source: Path, ref: str) -> tuple[str, str]:
    """(full commit, the source directory's path inside the repository); ConfigError naming what is wrong."""
    if not ref.strip() or ref.startswith("-") or "\0" in ref:
        raise ConfigError(f"--ref: '{clip(ref)}' is not a git ref; pass a branch, tag or commit (e.g. --ref HEAD)")
    prefix = _git(source, "rev-parse", "--show-prefix")
    if prefix.returncode != 0:
        raise ConfigError(f"--ref {clip(ref)}: the source {source} is not in a git repository; "
                          "deploy without --ref, or point source at a checkout")
    commit = _git(source, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if commit.returncode != 0 or not commit.stdout.strip():
        raise ConfigError(f"--ref {clip(ref)}: no such commit in the repository of {source}; "
                          "pass a branch, tag or commit that exists there (see `git log`)")
    return commit.stdout.strip(), prefix.stdout.strip()


@contextmanager
def exported(source: Path, ref: str) -> Iterator[ExportedRef]:
    """The source directory as committed in `ref`, in a temporary directory removed on exit."""
    commit, prefix = resolve(source, ref)
    treeish = f"{commit}:{prefix}" if prefix else commit
    if prefix and _git(source, "rev-parse", "--verify", "--quiet", f"{treeish}^{{tree}}").returncode != 0:
        raise ConfigError(f"--ref {clip(ref)}: commit {commit[:12]} has no directory {prefix.rstrip('/')} "
                          f"(the source, {source}); pass a ref that has it")
    import tempfile  # git exports are rare: tempfile and tarfile load only for `deploy --ref`

    tree = Path(tempfile.mkdtemp(prefix=f"mcp-deploy-{commit[:12]}-"))
    try:
        _extract(source, ref, treeish, tree)
        yield ExportedRef(repo=source, ref=ref, commit=commit, tree=tree)
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def _extract(source: Path, ref: str, treeish: str, dest: Path) -> None:
    """Stream `git archive` into `dest`. tar.umask=user gives the modes a checkout would have, so a
    deploy of REF plans exactly like a deploy of a clean checkout of REF."""
    import tarfile

    proc = subprocess.Popen(["git", "-c", "tar.umask=user", "archive", "--format=tar", treeish], cwd=source,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as archive:
            archive.extractall(dest, filter="tar")  # git's own output, still refused if it leaves dest
    except (tarfile.TarError, OSError) as exc:
        proc.kill()
        proc.wait()
        why = getattr(exc, "strerror", None) or str(exc).replace(str(dest), "the export")
        raise PreflightFailed(f"{source} @ {clip(ref)}: could not export the ref into the temporary directory "
                              f"{dest.parent} ({why}); free space there or point TMPDIR elsewhere, "
                              "then rerun") from None
    proc.stdout.read()
    err = proc.stderr.read().decode(errors="replace").strip()
    if proc.wait() != 0:
        raise ConfigError(f"--ref {clip(ref)}: `git archive {treeish}` failed in {source} "
                          f"({err.splitlines()[-1] if err else ''})")

"""Validators run against the staged release before the commit: a rejected release never reaches production.

Each takes the spec from deploy.yaml, a view of the release (`Tree`: where each
file of it can be read, and a directory holding all of it for commands) and the
release files the spec's globs select; it returns its problems (empty when fine).
`REGISTRY` maps the `type:` names deploy.yaml may use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Protocol

from . import checks, shell
from .fsutil import read_regular
from .profile import CheckSpec
from .errors import ValidationFailed
from .globs import PatternSet


class Tree(Protocol):
    """A release as validators see it: every file readable, a whole directory on demand."""

    def path(self, rel: str) -> Path: ...

    def read(self, rel: str) -> bytes: ...

    def directory(self) -> Path: ...


class Directory:
    """A release that is simply a complete directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, rel: str) -> Path:
        return self.root / rel

    def read(self, rel: str) -> bytes:
        return read_regular(self.root / rel, follow=True)  # a FIFO there must not hang the validator

    def directory(self) -> Path:
        return self.root


Validator = Callable[[CheckSpec, Tree, list[str], dict[str, str]], list[str]]


def check_json(spec: CheckSpec, release: Tree, files: list[str], env: dict[str, str]) -> list[str]:
    problems = []
    for rel in files:
        try:
            json.loads(release.read(rel))
        except json.JSONDecodeError as exc:
            problems.append(f"{rel}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}")
        except UnicodeDecodeError:
            problems.append(f"{rel}: invalid JSON: not UTF-8 text")
    return problems


def check_yaml(spec: CheckSpec, release: Tree, files: list[str], env: dict[str, str]) -> list[str]:
    import yaml  # not at the top: the fleet agent imports this module on hosts that have no PyYAML

    problems = []
    for rel in files:
        try:
            list(yaml.safe_load_all(release.read(rel)))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{rel}:{mark.line + 1}" if mark else rel
            problems.append(f"{where}: invalid YAML: {getattr(exc, 'problem', None) or exc}")
    return problems


def check_python_syntax(spec: CheckSpec, release: Tree, files: list[str], env: dict[str, str]) -> list[str]:
    """Compile (never run) every selected .py file."""
    problems = []
    for rel in files:
        try:
            compile(release.read(rel), rel, "exec", dont_inherit=True)
        except SyntaxError as exc:
            problems.append(f"{rel}:{exc.lineno}: syntax error: {exc.msg}")
        except ValueError as exc:  # e.g. null bytes
            problems.append(f"{rel}: cannot compile: {exc}")
    return problems


def check_json_schema(spec: CheckSpec, release: Tree, files: list[str], env: dict[str, str]) -> list[str]:
    import jsonschema  # only profiles that use this validator pay for the import

    from .config import yaml_path

    assert spec.schema is not None
    try:
        schema = json.loads(spec.schema.read_bytes())
        validator_cls = jsonschema.validators.validator_for(schema)
        validator_cls.check_schema(schema)
    except (OSError, ValueError, jsonschema.SchemaError) as exc:
        return [f"{spec.schema}: unusable JSON Schema: {str(exc).splitlines()[0]}"]
    validator = validator_cls(schema)
    problems = []
    for rel in files:
        try:
            doc = json.loads(release.read(rel))
        except ValueError as exc:
            problems.append(f"{rel}: invalid JSON: {exc}")
            continue
        for err in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))[:5]:
            problems.append(f"{rel}: {yaml_path(list(err.absolute_path))}: {err.message}")
    return problems


def check_command(spec: CheckSpec, release: Tree, files: list[str], env: dict[str, str]) -> list[str]:
    assert spec.run is not None
    result = shell.run(spec.run, release.directory(), spec.timeout, env)
    return [] if result.ok else [f"{result.describe()}\n{result.output.rstrip()}"]


REGISTRY: dict[str, Validator] = {
    "json": check_json,
    "json_schema": check_json_schema,
    "python_syntax": check_python_syntax,
    "yaml": check_yaml,
    "command": check_command,
}


def validate(specs: tuple[CheckSpec, ...], stage: Tree | Path, sync_set: list[str], env: dict[str, str],
             emit: checks.EventSink | None = None) -> list[dict[str, object]]:
    """Run every validator; raise ValidationFailed naming the first failing one and its problems."""
    tree = Directory(stage) if isinstance(stage, Path) else stage

    def attempt(spec: CheckSpec) -> tuple[list[str], dict[str, object]]:
        selected = PatternSet(spec.files)
        files = [p for p in sync_set if selected.matches(p)]
        return REGISTRY[spec.type](spec, tree, files, env), {"files": len(files)}

    return checks.run(specs, "validate", attempt, ValidationFailed, "validator", emit)

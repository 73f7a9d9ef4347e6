"""Validators run on the stage before the swap; a failure means production is never touched.

Each takes the spec from deploy.yaml, the stage directory and the staged sync-set
files the spec's globs select, and returns a list of problems (empty when fine).
`REGISTRY` maps the `type:` names deploy.yaml may use.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import yaml

from . import commands
from .config import CheckSpec, yaml_path
from .errors import ValidationFailed
from .globs import PatternSet

Validator = Callable[[CheckSpec, Path, list[str], dict[str, str]], list[str]]


def check_json(spec: CheckSpec, stage: Path, files: list[str], env: dict[str, str]) -> list[str]:
    problems = []
    for rel in files:
        try:
            json.loads((stage / rel).read_bytes())
        except json.JSONDecodeError as exc:
            problems.append(f"{rel}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}")
        except UnicodeDecodeError:
            problems.append(f"{rel}: invalid JSON: not UTF-8 text")
    return problems


def check_yaml(spec: CheckSpec, stage: Path, files: list[str], env: dict[str, str]) -> list[str]:
    problems = []
    for rel in files:
        try:
            list(yaml.safe_load_all((stage / rel).read_bytes()))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{rel}:{mark.line + 1}" if mark else rel
            problems.append(f"{where}: invalid YAML: {getattr(exc, 'problem', None) or exc}")
    return problems


def check_python_syntax(spec: CheckSpec, stage: Path, files: list[str], env: dict[str, str]) -> list[str]:
    """Compile (never run) every selected .py file."""
    problems = []
    for rel in files:
        try:
            compile((stage / rel).read_bytes(), rel, "exec", dont_inherit=True)
        except SyntaxError as exc:
            problems.append(f"{rel}:{exc.lineno}: syntax error: {exc.msg}")
        except ValueError as exc:  # e.g. null bytes
            problems.append(f"{rel}: cannot compile: {exc}")
    return problems


def check_json_schema(spec: CheckSpec, stage: Path, files: list[str], env: dict[str, str]) -> list[str]:
    import jsonschema  # only profiles that use this validator pay for the import

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
            doc = json.loads((stage / rel).read_bytes())
        except ValueError as exc:
            problems.append(f"{rel}: invalid JSON: {exc}")
            continue
        for err in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))[:5]:
            problems.append(f"{rel}: {yaml_path(list(err.absolute_path))}: {err.message}")
    return problems


def check_command(spec: CheckSpec, stage: Path, files: list[str], env: dict[str, str]) -> list[str]:
    assert spec.run is not None
    result = commands.run(spec.run, stage, spec.timeout, env)
    return [] if result.ok else [f"{result.describe()}\n{result.output.rstrip()}"]


REGISTRY: dict[str, Validator] = {
    "json": check_json,
    "json_schema": check_json_schema,
    "python_syntax": check_python_syntax,
    "yaml": check_yaml,
    "command": check_command,
}


def validate(specs: tuple[CheckSpec, ...], stage: Path, sync_set: list[str], env: dict[str, str],
             emit: Callable[[str, dict[str, object]], None] = lambda kind, data: None) -> list[dict[str, object]]:
    """Run every validator; raise ValidationFailed naming the first failing one and its problems."""
    results: list[dict[str, object]] = []
    for spec in specs:
        selected = PatternSet(spec.files)
        files = [p for p in sync_set if selected.matches(p)]
        started = time.monotonic()
        problems = REGISTRY[spec.type](spec, stage, files, env)
        seconds = round(time.monotonic() - started, 3)
        results.append({"name": spec.name, "files": len(files), "ok": not problems, "seconds": seconds})
        emit("check", {"step": "validate", **results[-1]})
        if problems:
            shown = "; ".join(p.splitlines()[0] for p in problems[:3])
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            raise ValidationFailed(f"validator {spec.name}: {shown}{more}", detail="\n".join(problems))
    return results

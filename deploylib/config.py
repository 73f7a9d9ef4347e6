"""Load deploy.yaml, check it against the packaged JSON Schema, and resolve one profile.

Every problem becomes a `ConfigError` naming the file, the line, the YAML path of
the bad key and what is expected, so a typo never turns into a silent default.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import yaml

from .errors import ConfigError
from .fsutil import atomic_write
from .globs import PatternSet, SyncRules, pattern_problem

if TYPE_CHECKING:
    import jsonschema

CONFIG_ENV = "MCP_DEPLOY_CONFIG"
DEFAULT_CONFIG = "deploy.yaml"
DEFAULT_TIMEOUT = 60.0
DEFAULT_FILES = {
    "json": ("**/*.json",),
    "yaml": ("**/*.yaml", "**/*.yml"),
    "python_syntax": ("**/*.py",),
}


@dataclass(frozen=True)
class CheckSpec:
    """One validator or verify check as written in deploy.yaml, paths resolved."""

    type: str
    name: str
    files: tuple[str, ...] = ()
    schema: Path | None = None
    run: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    options: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Retention:
    keep_last: int = 10
    keep_days: float | None = None


@dataclass(frozen=True)
class Profile:
    """Everything one deployment needs to know, with absolute paths."""

    name: str
    config_path: Path
    source: Path
    target: Path
    backup_dir: Path
    state_dir: Path
    log: Path
    rules: SyncRules
    validators: tuple[CheckSpec, ...] = ()
    verify: tuple[CheckSpec, ...] = ()
    retention: Retention = Retention()
    deployed_by: str = ""
    tool_prefix: str = "ua_self_"  # MCP tool names: <prefix>deploy, <prefix>status, ...


def schema() -> dict[str, Any]:
    """The JSON Schema of deploy.yaml, as shipped inside the package."""
    return json.loads(_schema_text())


def _schema_text() -> str:
    return resources.files("deploylib").joinpath("schema/deploy.schema.json").read_text()


def find_config(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The config file to use: the flag, else $MCP_DEPLOY_CONFIG, else ./deploy.yaml."""
    chosen = explicit or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG
    path = Path(chosen).expanduser()
    if not path.is_file():
        how = "--config" if explicit else (CONFIG_ENV if os.environ.get(CONFIG_ENV) else "the current directory")
        raise ConfigError(
            f"{path}: config file not found (from {how}); pass --config PATH or set {CONFIG_ENV}"
        )
    return path.resolve()


def load_profile(config: str | os.PathLike[str] | None = None, profile: str | None = None) -> Profile:
    """Read, validate and resolve one profile of a deploy.yaml."""
    path = find_config(config)
    text, data = _read_yaml(path)
    _check_schema(path, text, data)
    name = _pick_profile(path, data, profile)
    return _resolve(path, text, name, data["profiles"][name])


def _read_yaml(path: Path) -> tuple[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: YAML syntax error: {problem}; fix the YAML and rerun") from None
    if data is None:
        raise ConfigError(f"{path}: config is empty; it needs a 'profiles:' mapping")
    return text, data


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys: YAML keeps the last one silently, hiding a typo."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:  # explicit keys only: a `<<` merge may be overridden on purpose
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key '{key_node.value}' (YAML would silently keep only the last one)",
                        key_node.start_mark)
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


def _check_schema(path: Path, text: str, data: Any) -> None:
    """Validate against the schema, unless these exact bytes already passed this exact schema.

    Importing jsonschema is a third of the CLI's start-up; a config is edited far less often than
    it is read, and validation is a pure function of (schema, text), so a pass is remembered.
    """
    schema_text = _schema_text()
    passed = _validated_mark(path)
    key = hashlib.sha256(f"{schema_text}\0{text}".encode()).hexdigest()
    if passed is not None and _read_quietly(passed) == key:
        return
    import jsonschema

    validator = jsonschema.Draft202012Validator(json.loads(schema_text))
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is None:
        if passed is not None:
            try:
                passed.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(passed, key.encode())
            except OSError:
                pass  # an unwritable cache only costs validating again next time
        return
    keys = list(error.absolute_path)
    detail = _describe(error)
    if error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        if unknown:
            keys.append(unknown[0])
    raise ConfigError(f"{_where(path, text, keys)}: {yaml_path(keys)}: {detail}")


def _read_quietly(path: Path) -> str | None:
    """The text of a cache file, or None when it is missing or unreadable (e.g. another user's cache)."""
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _validated_mark(config: Path) -> Path | None:
    """Where the hash of the last version of `config` that passed validation is kept (per config path)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(base):
        return None
    name = hashlib.sha256(str(config).encode()).hexdigest()[:32]
    return Path(base) / "mcp-deploy" / "validated" / name


def _describe(error: jsonschema.ValidationError) -> str:
    """A short, human sentence for a schema error: what is expected."""
    kind, inst = error.validator, error.instance
    if kind == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(inst) - set(allowed))
        hint = difflib.get_close_matches(str(unknown[0]), allowed, n=1) if unknown and allowed else []
        also = f"; did you mean '{hint[0]}'?" if hint else (f"; allowed keys: {', '.join(allowed)}" if allowed else "")
        return f"unknown key '{unknown[0] if unknown else '?'}'{also}"
    if kind == "required":
        return error.message.replace("is a required property", "is required here").replace("'", "'", 1)
    if kind == "type":
        return f"expected {_a(error.validator_value)}, got {json.dumps(inst, default=str)}"
    if kind == "oneOf" and isinstance(error.schema, dict) and "oneOf" in error.schema:
        kinds = [s.get("type") for s in error.schema["oneOf"] if isinstance(s, dict)]
        if all(kinds):
            return f"expected {' or '.join(_a(k) for k in kinds)}, got {json.dumps(inst, default=str)}"
    if kind in ("enum", "const"):
        allowed = error.validator_value if kind == "enum" else [error.validator_value]
        return f"must be one of {', '.join(map(str, allowed))}; got {json.dumps(inst, default=str)}"
    if kind in ("minimum", "exclusiveMinimum", "maximum"):
        return f"{error.message}"
    if kind == "minLength":
        return "must not be empty"
    if kind == "minProperties":
        return "needs at least one entry"
    return error.message


def _a(kind: object) -> str:
    names = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
             "number": "a number", "boolean": "true or false"}
    if isinstance(kind, list):
        return " or ".join(names.get(k, str(k)) for k in kind)
    return names.get(str(kind), str(kind))


def yaml_path(keys: list[Any]) -> str:
    """Render ['profiles', 'default', 'include', 2] as profiles.default.include[2]."""
    out = ""
    for key in keys:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out or "(top level)"


def _where(path: Path, text: str, keys: list[Any]) -> str:
    """file:line of the YAML node at `keys` (or of its closest existing parent)."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return str(path)
    line = node.start_mark.line if node is not None else 0
    for key in keys:
        child = None
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == str(key):
                    child, line = v, k.start_mark.line
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            child = node.value[key]
            line = child.start_mark.line
        if child is None:
            break
        node = child
    return f"{path}:{line + 1}"


def _pick_profile(path: Path, data: dict[str, Any], requested: str | None) -> str:
    profiles = data["profiles"]
    name = requested or data.get("default_profile") or ("default" if "default" in profiles else None)
    if name is None and len(profiles) == 1:
        name = next(iter(profiles))
    if name is None:
        raise ConfigError(f"{path}: several profiles and none chosen; pass --profile ({', '.join(profiles)})")
    if name not in profiles:
        key = "--profile" if requested else "default_profile"
        raise ConfigError(f"{path}: {key}: no profile named '{name}'; known profiles: {', '.join(profiles)}")
    return name


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand(value: str, keys: list[Any], path: Path, text: str, base: Path) -> Path:
    """Expand ${ENV} and ~, and anchor a relative path at the config file's directory."""

    def env(match: re.Match[str]) -> str:
        var = match.group(1)
        if var not in os.environ:
            raise ConfigError(
                f"{_where(path, text, keys)}: {yaml_path(keys)}: environment variable ${{{var}}} is not set; "
                "export it or write the path out"
            )
        return os.environ[var]

    expanded = Path(os.path.expanduser(_ENV_REF.sub(env, value)))
    return Path(os.path.normpath(base / expanded))


def _globs(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    return (raw,) if isinstance(raw, str) else tuple(raw)


def _resolve(path: Path, text: str, name: str, raw: dict[str, Any]) -> Profile:
    base = path.parent
    at = ["profiles", name]

    def p(key: str, default: Path | None = None) -> Path:
        if key not in raw:
            assert default is not None
            return default
        return _expand(raw[key], at + [key], path, text, base)

    def fail(keys: list[Any], what: str) -> ConfigError:
        return ConfigError(f"{_where(path, text, keys)}: {yaml_path(keys)}: {what}")

    for key in ("include", "exclude", "unsafe_allow_secrets"):
        values = raw.get(key)
        for i, pattern in enumerate(_globs(values)):
            problem = pattern_problem(pattern)
            if problem:
                keys = at + [key] + ([i] if isinstance(values, list) else [])
                raise fail(keys, f"glob '{pattern}' {problem}")

    source, target = p("source"), p("target")
    if not source.is_dir():
        what = "is not a directory" if source.exists() else "does not exist"
        raise fail(at + ["source"], f"source directory {source} {what}; check the path")
    if target == source or target.is_relative_to(source) or source.is_relative_to(target):
        raise fail(at + ["target"], f"target {target} overlaps source {source}; they must be separate trees")
    if target.is_symlink():
        raise fail(at + ["target"], f"target {target} is a symlink; point 'target' at the real directory "
                   f"({target.resolve()}) so the swap replaces the directory, not the link")
    if target.exists() and not target.is_dir():
        raise fail(at + ["target"], f"target {target} exists and is not a directory")
    blocker = _not_a_directory(target.parent)
    if blocker is not None:
        raise fail(at + ["target"], f"target {target} cannot be created: {blocker} is not a directory")
    sibling = target.parent / f".{target.name}"
    state_dir = p("state_dir", Path(f"{sibling}.deploy-state"))
    backup_dir = p("backup_dir", Path(f"{sibling}.backups"))
    for key, value in (("state_dir", state_dir), ("backup_dir", backup_dir)):
        if value.is_relative_to(target) or value.is_relative_to(source):
            raise fail(at + [key], f"{value} is inside the source or target tree; put it beside them")
    log = p("log", state_dir / "history.jsonl")

    rules = SyncRules(
        include=PatternSet(_globs(raw["include"])),
        exclude=PatternSet(_globs(raw.get("exclude"))),
        secrets_allowed=PatternSet(_globs(raw.get("unsafe_allow_secrets"))),
    )
    validators = tuple(
        _check(spec, at + ["validators", i], path, text, base) for i, spec in enumerate(raw.get("validators", []))
    )
    verify = tuple(_check(spec, at + ["verify", i], path, text, base) for i, spec in enumerate(raw.get("verify", [])))
    retention_raw = raw.get("retention", {})
    retention = Retention(keep_last=retention_raw.get("keep_last", 10), keep_days=retention_raw.get("keep_days"))
    return Profile(
        name=name, config_path=path, source=source, target=target, backup_dir=backup_dir,
        state_dir=state_dir, log=log, rules=rules, validators=validators, verify=verify,
        retention=retention, deployed_by=raw.get("deployed_by") or _whoami(),
        tool_prefix=raw.get("mcp", {}).get("tool_prefix", "ua_self_"),
    )


def _not_a_directory(path: Path) -> Path | None:
    """The first existing component of `path` that is not a directory (so nothing can be created under it)."""
    for candidate in [path, *path.parents]:
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None


def _check(spec: dict[str, Any], keys: list[Any], path: Path, text: str, base: Path) -> CheckSpec:
    kind = spec["type"]
    files = _globs(spec.get("files")) or DEFAULT_FILES.get(kind, ())
    for pattern in files:
        problem = pattern_problem(pattern)
        if problem:
            raise ConfigError(f"{_where(path, text, keys + ['files'])}: {yaml_path(keys + ['files'])}: "
                              f"glob '{pattern}' {problem}")
    schema_path = None
    if "schema" in spec:
        schema_path = _expand(spec["schema"], keys + ["schema"], path, text, base)
        if not schema_path.is_file():
            raise ConfigError(f"{_where(path, text, keys + ['schema'])}: {yaml_path(keys + ['schema'])}: "
                              f"schema file {schema_path} does not exist")
    extra = {k: v for k, v in spec.items() if k not in {"type", "name", "files", "schema", "run", "timeout"}}
    return CheckSpec(
        type=kind, name=spec.get("name") or kind,
        files=files, schema=schema_path, run=spec.get("run"),
        timeout=float(spec.get("timeout", DEFAULT_TIMEOUT)), options=extra,
    )


def _whoami() -> str:
    try:
        import getpass

        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return str(os.getuid())

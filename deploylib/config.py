"""Load deploy.yaml, check it against the packaged JSON Schema, and resolve one profile.

Every problem becomes a `ConfigError` naming the file, the line, the YAML path of
the bad key and what is expected, so a typo never turns into a silent default.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from . import configmark
from .errors import ConfigError
from .globs import PatternSet, SyncRules, normalize, pattern_problem
from .ids import new_id
from .layout import (HASH_CACHE_FILE, JOURNAL_FILE, LOCK_FILE, RELEASES_DIR, STORE_MARKER, VERSION_FILE,
                     stage_path, target_lock_path)
from .profile import (DEFAULT_NOTIFY_TIMEOUT, DEFAULT_TIMEOUT, HOOK_POINTS, MAX_ECHO, NOTIFY_EVENTS,  # noqa: F401
                      CheckSpec, Hook, Notifier, Profile, Retention, clip)

if TYPE_CHECKING:
    import jsonschema

    from .fleet.model import Fleet

CONFIG_ENV = "MCP_DEPLOY_CONFIG"
DEFAULT_CONFIG = "deploy.yaml"
MAX_CONFIG_BYTES = 1 << 20  # characters; a deploy.yaml is a few KiB, anything near this is the wrong file
MAX_REPORTED = 10  # lines of problems reported at once
NAME_MAX = 255  # bytes in one path component (Linux, macOS)
# MCP Deploy creates `.<target>.deploy-<operation id>` beside the target: its name must fit too
TARGET_NAME_MAX = NAME_MAX - len(".") - len(".deploy-") - len(new_id("d"))
TREES = ("source", "target", "backup_dir", "state_dir")  # none may be inside another
DEFAULT_FILES = {
    "json": ("**/*.json",),
    "yaml": ("**/*.yaml", "**/*.yml"),
    "python_syntax": ("**/*.py",),
}


def schema() -> dict[str, Any]:
    """The JSON Schema of deploy.yaml, as shipped inside the package."""
    return json.loads(_schema_text())


def _schema_text() -> str:
    import pkgutil  # not importlib.resources: ~7 ms more of start-up; both read from the fleet agent's zip

    data = pkgutil.get_data("deploylib", "schema/deploy.schema.json")
    assert data is not None  # deploylib's loaders (files, zipimport) can read their own data
    return data.decode()


def find_config(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The config file to use: the flag, else $MCP_DEPLOY_CONFIG, else ./deploy.yaml."""
    chosen = explicit or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG
    path = Path(chosen).expanduser()
    if not path.is_file():
        how = "--config" if explicit else (CONFIG_ENV if os.environ.get(CONFIG_ENV) else "the current directory")
        what = "is a directory, not a config file" if path.is_dir() else "config file not found"
        raise ConfigError(f"{clip(str(path))}: {what} (from {how}); pass --config PATH or set {CONFIG_ENV}")
    return path.resolve()


def load_profile(config: str | os.PathLike[str] | None = None, profile: str | None = None) -> Profile:
    """Read, validate and resolve one profile of a deploy.yaml (a fleet profile is refused: see load_any)."""
    found = load_any(config, profile)
    if not isinstance(found, Profile):
        raise ConfigError(f"{found.config_path}: profile '{found.name}' deploys to hosts (hosts:); this command "
                          "works on one machine only: deploy, rollback, status and history take fleet profiles")
    return found


def load_any(config: str | os.PathLike[str] | None = None, profile: str | None = None) -> Profile | Fleet:
    """Read, validate and resolve one profile: a Profile, or a Fleet when it has `hosts:`."""
    path = find_config(config)
    text, data = _read_valid(path)
    name = _pick_profile(path, data, profile)
    raw = data["profiles"][name]
    if "hosts" in raw:
        return _resolve_fleet(path, text, name, raw)
    for key in FLEET_ONLY:
        if key in raw:
            problems = _Problems(path, text)
            problems.add(["profiles", name, key], "only a profile with hosts: takes this key; add hosts: or remove it")
            problems.raise_any()
    return _resolve(path, text, name, raw)


FLEET_ONLY = ("rollout", "on_host_failure", "ssh", "controller_state_dir")
HOST_PATHS = ("target", "backup_dir", "state_dir", "log")


def _resolve_fleet(path: Path, text: str, name: str, raw: dict[str, Any]) -> Fleet:
    """A fleet profile: the source side resolves here like any profile (under the controller's own state
    dir); target, backup_dir, state_dir and log are paths on each host, `~` expanded there."""
    from .fleet.model import Fleet, Rollout  # only a profile with hosts: needs them
    from .fleet.model import Host as FleetHost

    at = ["profiles", name]
    problems = _Problems(path, text)
    ctl = raw.get("controller_state_dir")
    if ctl is not None:
        ctl_dir = _expand(ctl, at + ["controller_state_dir"], path.parent, problems)
    else:
        base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
        ctl_dir = base / "mcp-deploy" / "fleet" / f"{derived_prefix(name)}{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
    if ctl is not None and ctl_dir is not None and isinstance(raw.get("source"), str):
        # said here, by the key the user wrote: the checks below would blame `log` and an internal target
        source = _expand(raw["source"], at + ["source"], path.parent, _Problems(path, text))
        real_ctl, blocker = Path(os.path.realpath(ctl_dir)), _not_a_directory(ctl_dir)
        if blocker is not None:
            problems.add(at + ["controller_state_dir"], f"controller_state_dir {clip(str(ctl_dir))} cannot be "
                         f"created: {clip(str(blocker))} is not a directory")
        elif source is not None and real_ctl.is_relative_to(os.path.realpath(source)):
            problems.add(at + ["controller_state_dir"], f"controller_state_dir {clip(str(ctl_dir))} is inside "
                         f"source {clip(str(source))}; the controller's state and history must be outside the tree "
                         "it deploys: put them side by side")
        problems.raise_any()
    local_raw = {k: v for k, v in raw.items() if k not in (*FLEET_ONLY, "hosts", *HOST_PATHS)}
    ctl_base = Path(ctl_dir or path.parent)  # never written but for state/ and the history
    local_raw.update(target=str(ctl_base / "no-target"), state_dir=str(ctl_base / "state"),
                     backup_dir=str(ctl_base / "no-store"), log=str(ctl_base / "history.jsonl"))
    local = _resolve(path, text, name, local_raw)
    for i, check in enumerate(local.verify):
        if check.type != "command":
            problems.add(at + ["verify", i], f"a {check.type} check cannot run on a fleet host yet (the host has "
                         "Python's standard library only); use a command check")
    hosts: list[FleetHost] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw["hosts"]):
        spec = {"host": entry} if isinstance(entry, str) else entry
        hname = spec["host"]
        if hname in seen:
            problems.add(at + ["hosts", i], f"host '{clip(hname)}' is listed twice")
            continue
        seen.add(hname)
        destination, port = _destination(hname, at + ["hosts", i], problems)
        paths = _host_paths(raw, spec, at + ["hosts", i], problems)
        if paths is None:
            continue
        host_profile = replace(local, target=paths["target"], backup_dir=paths["backup_dir"],
                               state_dir=paths["state_dir"], log=paths["log"],
                               validators=tuple(v for v in local.validators if v.type == "command"),
                               notify=())
        hosts.append(FleetHost(hname, destination, port, host_profile))
    rollout_raw = raw.get("rollout", {})
    rollout = Rollout(parallel=rollout_raw.get("parallel", 10), batch=rollout_raw.get("batch"),
                      canary=rollout_raw.get("canary", 0), max_failures=rollout_raw.get("max_failures", 0),
                      confirm_timeout=float(rollout_raw.get("confirm_timeout", 30.0)))
    if rollout.canary >= len(raw["hosts"]) > 1:
        problems.add(at + ["rollout", "canary"], f"{rollout.canary} canaries leave no other host of "
                     f"{len(raw['hosts'])}; use fewer")
    ssh = raw.get("ssh", {})
    ssh_config = _expand(ssh["config"], at + ["ssh", "config"], path.parent, problems) if "config" in ssh else None
    problems.raise_any()
    return Fleet(name=name, config_path=path, local=local, hosts=tuple(hosts), rollout=rollout,
                 on_host_failure=raw.get("on_host_failure", "rollback_fleet"), ssh_config=ssh_config,
                 ssh_options=tuple(ssh.get("options", ())),
                 file_validators=tuple(v for v in local.validators if v.type != "command"))


def _destination(name: str, keys: list[Any], problems: _Problems) -> tuple[str, int | None]:
    """user@host[:port] or an ssh alias -> (what ssh connects to, port or None)."""
    host, sep, port = name.rpartition(":")
    if not sep:
        return name, None
    if not port.isdigit() or not 0 < int(port) < 65536 or not host:
        problems.add(keys, f"'{clip(name)}': expected an ssh alias or user@host[:port]")
        return name, None
    return host, int(port)


def _host_paths(raw: dict[str, Any], spec: dict[str, Any], keys: list[Any],
                problems: _Problems) -> dict[str, Path] | None:
    """The host's target, backup_dir, state_dir and log: its own, else the profile's, else beside the target."""
    chosen = {key: spec.get(key, raw.get(key)) for key in HOST_PATHS}
    for key, value in chosen.items():
        if value is not None and not (str(value).startswith("/") or str(value).startswith("~")):
            problems.add(keys + [key] if key in spec else keys[:2] + [key],
                         f"'{clip(str(value))}' is a path on each host: it must be absolute or start with ~")
            return None
    target = Path(os.path.normpath(str(chosen["target"])))
    if target.name in ("", ".", "..") or str(target) == "/":
        problems.add(keys + ["target"], "the target must be a directory below /")
        return None
    sibling = target.parent / f".{target.name}"
    out = {"target": target,
           "backup_dir": Path(chosen["backup_dir"] or f"{sibling}.backups"),
           "state_dir": Path(chosen["state_dir"] or f"{sibling}.deploy-state")}
    out["log"] = Path(chosen["log"]) if chosen["log"] else out["state_dir"] / "history.jsonl"
    out = {key: Path(os.path.normpath(path)) for key, path in out.items()}
    given = {key for key in HOST_PATHS if chosen[key] is not None}
    blame = {key: keys + [key] if key in spec else keys[:2] + [key] for key in HOST_PATHS}
    # as for a local profile, but by the paths as written: the controller cannot resolve the host's links
    found = _nesting(out, given, os.path.normpath)
    mine = _own_file(out, os.path.normpath) if "log" in given else None
    if mine:
        found.append(("log", f"log {clip(str(out['log']))} is {mine}; point log at a file of its own "
                             "(the default is history.jsonl in state_dir)"))
    for key, what in found:
        problems.add(blame[key], f"{what} (on host {clip(str(spec['host']))})" if key in spec else what)
    return None if found else out


def derived_prefix(profile: str) -> str:
    """The default MCP tool prefix, `<profile>_`: two profiles served side by side get distinct tools.
    Characters a tool name may not hold become `_`, and a long name is cut (tool names stop at 128)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", profile)[:64] + "_"


def tool_prefix(config: str | os.PathLike[str] | None = None, profile: str | None = None) -> str:
    """The profile's MCP tool prefix, read as far as a broken config allows, so an MCP server started on
    a broken deploy.yaml still offers its tools (each answering with the config error) under the usual names."""
    try:
        return load_any(config, profile).tool_prefix
    except ConfigError:
        pass
    try:
        _, data = _read_yaml(find_config(config))
        profiles = data["profiles"]
        name = profile or data.get("default_profile") or ("default" if "default" in profiles else next(iter(profiles)))
        chosen = profiles[name]["mcp"]["tool_prefix"]
        if isinstance(chosen, str) and re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", chosen):
            return chosen
        return derived_prefix(str(name))
    except (ConfigError, LookupError, TypeError, AttributeError, StopIteration):  # too broken to tell
        return derived_prefix(profile or "default")


def profile_names(config: str | os.PathLike[str] | None = None) -> list[str]:
    """The profile names of a deploy.yaml, for shell completion; none when it cannot be read."""
    try:
        _, data = _read_yaml(find_config(config))
        return [str(name) for name in data["profiles"]]
    except (ConfigError, LookupError, TypeError, AttributeError):
        return []


def _read_text(path: Path) -> str:
    try:
        with path.open(encoding="utf-8") as f:
            text = f.read(MAX_CONFIG_BYTES + 1)  # no further: a config pointed at a huge file costs nothing
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: config is larger than {MAX_CONFIG_BYTES >> 20} MiB; a deploy.yaml is a few KiB: "
                          f"check that --config or ${CONFIG_ENV} names the right file")
    return text


def _read_yaml(path: Path) -> tuple[str, Any]:
    """The config's text and data, not validated (shell completion, a broken config's tool names)."""
    from . import yamlconfig

    text = _read_text(path)
    return text, yamlconfig.parse(path, text)


def _read_valid(path: Path) -> tuple[str, Any]:
    """The config's text and data, valid against the schema; taken from its validated mark when these exact
    bytes passed this exact schema before (see configmark), else parsed, validated and marked."""
    text = _read_text(path)
    schema_text = _schema_text()
    where = configmark.location(path)
    mark = configmark.recall(where) if where is not None else None
    passed = configmark.passed(mark, schema_text, text)
    if passed and mark is not None and mark.data:
        try:
            return text, json.loads(mark.data)
        except (ValueError, RecursionError):  # the hash held but the JSON does not parse: as if unmarked
            passed = False
    from . import yamlconfig

    data = yamlconfig.parse(path, text)
    if not passed:
        _check_schema(path, text, data, schema_text)
        if where is not None:
            configmark.remember(where, schema_text, text, data)
    return text, data


class _Problems:
    """Every mistake found in one pass, so a config with three is fixed in one edit, not three reruns."""

    def __init__(self, path: Path, text: str) -> None:
        self.path, self.text = path, text
        self.found: list[tuple[int, str]] = []

    def add(self, keys: list[Any], what: str) -> None:
        from .yamlconfig import line_of  # only a problem needs the YAML parser

        line = line_of(self.text, keys)
        found = (line, f"{self.path}:{line}: {yaml_path(keys)}: {what}")
        if found not in self.found:  # a profile-wide value wrong on every host is said once
            self.found.append(found)

    def raise_any(self) -> None:
        """One ConfigError with one line per problem, in file order, at most MAX_REPORTED lines."""
        if not self.found:
            return
        lines = list(dict.fromkeys(message for _, message in sorted(self.found, key=lambda f: f[0])))
        if len(lines) > MAX_REPORTED:
            rest = len(lines) - (MAX_REPORTED - 1)
            lines = lines[: MAX_REPORTED - 1] + [f"{self.path}: ... and {rest} more problems; fix these and rerun"]
        raise ConfigError("\n".join(lines))


def _check_schema(path: Path, text: str, data: Any, schema_text: str) -> None:
    """Every schema problem of the config, raised as one ConfigError (see _Problems)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(json.loads(schema_text))
    problems = _Problems(path, text)
    for error in validator.iter_errors(data):
        _schema_problem(jsonschema.exceptions.best_match([error]), problems)
    problems.raise_any()


def _schema_problem(error: jsonschema.ValidationError, problems: _Problems) -> None:
    """Record one schema error; an unknown-keys error becomes one line per unknown key, each at its own line."""
    keys = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        for unknown in _unknown_keys(error):
            problems.add(keys + [unknown], _unknown_key(unknown, allowed))
        return
    problems.add(keys, _describe(error))


def _unknown_keys(error: jsonschema.ValidationError) -> list[Any]:
    """Keys of the instance neither named in `properties` nor matched by `patternProperties` (e.g. `x-...`)."""
    named = error.schema.get("properties", {})
    patterns = list(error.schema.get("patternProperties", {}))
    return [key for key in error.instance
            if key not in named and not any(re.search(p, str(key)) for p in patterns)]


def _unknown_key(unknown: Any, allowed: list[str]) -> str:
    import difflib  # only a mistyped key needs it

    hint = difflib.get_close_matches(str(unknown), allowed, n=1) if allowed else []
    also = f"; did you mean '{hint[0]}'?" if hint else (f"; allowed keys: {', '.join(allowed)}" if allowed else "")
    return f"unknown key '{clip(str(unknown))}'{also}"


def _describe(error: jsonschema.ValidationError) -> str:
    """A short, human sentence for a schema error: what is expected (quoting the user's value, clipped)."""
    kind, inst = error.validator, error.instance
    if kind == "required":
        return error.message.replace("is a required property", "is required here")
    if kind == "type" and not error.absolute_path:  # e.g. --config /etc/passwd: quote none of it
        return f"expected {_a(error.validator_value)} with a 'profiles:' key, got {_kind(inst)}; is this a deploy.yaml?"
    if kind == "type":
        return f"expected {_a(error.validator_value)}, got {_dump(inst)}"
    if kind == "oneOf" and isinstance(error.schema, dict) and "oneOf" in error.schema:
        kinds = [s.get("type") for s in error.schema["oneOf"] if isinstance(s, dict)]
        if all(kinds):
            return f"expected {' or '.join(_a(k) for k in kinds)}, got {_dump(inst)}"
    if kind in ("enum", "const"):
        allowed = error.validator_value if kind == "enum" else [error.validator_value]
        return f"must be one of {', '.join(map(str, allowed))}; got {_dump(inst)}"
    if kind == "minLength":
        return "must not be empty"
    if kind == "minProperties":
        return "needs at least one entry"
    return clip(error.message)


def _dump(value: Any) -> str:
    return clip(json.dumps(value, default=str))


def _kind(value: Any) -> str:
    """What a value is, without quoting it: "a string of 1335 characters", "a list of 2 items"."""
    if isinstance(value, str):
        return f"a string of {len(value)} characters"
    if isinstance(value, list):
        return f"a list of {len(value)} items"
    return _a({bool: "boolean", int: "integer", float: "number"}.get(type(value), type(value).__name__))


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
        out += f"[{key}]" if isinstance(key, int) else (f".{clip(str(key))}" if out else clip(str(key)))
    return out or "(top level)"


def _pick_profile(path: Path, data: dict[str, Any], requested: str | None) -> str:
    profiles = data["profiles"]
    name = requested or data.get("default_profile") or ("default" if "default" in profiles else None)
    if name is None and len(profiles) == 1:
        name = next(iter(profiles))
    known = clip(", ".join(map(str, profiles)))
    if name is None:
        raise ConfigError(f"{path}: several profiles and none chosen; pass --profile ({known})")
    if name not in profiles:
        key = "--profile" if requested else "default_profile"
        raise ConfigError(f"{path}: {key}: no profile named '{clip(str(name))}'; known profiles: {known}")
    return name


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand(value: str, keys: list[Any], base: Path, problems: _Problems) -> Path | None:
    """Expand ${ENV} and ~, and anchor a relative path at the config file's directory (None: a problem)."""
    if "\x00" in value:
        problems.add(keys, "contains a NUL byte, which no path can; remove it")
        return None
    unset = [var for var in _ENV_REF.findall(value) if var not in os.environ]
    if unset:
        problems.add(keys, f"environment variable ${{{clip(unset[0])}}} is not set; export it or write the path out")
        return None
    expanded = Path(os.path.expanduser(_ENV_REF.sub(lambda m: os.environ[m.group(1)], value)))
    return Path(os.path.normpath(base / expanded))


def _globs(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    return (raw,) if isinstance(raw, str) else tuple(raw)


def _patterns(raw: Any, keys: list[Any], problems: _Problems) -> tuple[str, ...]:
    """The globs under one key, normalised (`./a.py` is `a.py`), each unusable one recorded as a problem."""
    out = []
    for i, pattern in enumerate(_globs(raw)):
        problem = pattern_problem(pattern)
        if problem:
            problems.add(keys + ([i] if isinstance(raw, list) else []), f"glob '{clip(pattern)}' {problem}")
        else:
            out.append(normalize(pattern))
    return tuple(out)


def _resolve(path: Path, text: str, name: str, raw: dict[str, Any]) -> Profile:
    base = path.parent
    at = ["profiles", name]
    problems = _Problems(path, text)
    include, exclude, allowed, setid = (_patterns(raw.get(key), at + [key], problems)
                                        for key in ("include", "exclude", "unsafe_allow_secrets", "allow_setid"))
    places = _places(raw, at, base, problems)
    validators = tuple(_check(spec, at + ["validators", i], base, problems)
                       for i, spec in enumerate(raw.get("validators", [])))
    verify = tuple(_check(spec, at + ["verify", i], base, problems) for i, spec in enumerate(raw.get("verify", [])))
    hooks = {point: tuple(Hook(run=h["run"], timeout=float(h.get("timeout", DEFAULT_TIMEOUT))) for h in entries)
             for point, entries in raw.get("hooks", {}).items()}
    notify = tuple(_notifier(spec, at + ["notify", i], problems) for i, spec in enumerate(raw.get("notify", [])))
    problems.raise_any()
    retention_raw = raw.get("retention", {})
    retention = Retention(keep_last=retention_raw.get("keep_last", 10), keep_days=retention_raw.get("keep_days"))
    return Profile(
        name=name, config_path=path, source=places["source"], target=places["target"],
        backup_dir=places["backup_dir"], state_dir=places["state_dir"], log=places["log"],
        rules=SyncRules(include=PatternSet(include), exclude=PatternSet(exclude),
                        secrets_allowed=PatternSet(allowed), setid_allowed=PatternSet(setid)),
        validators=validators, verify=verify, retention=retention,
        deployed_by=raw.get("deployed_by") or _whoami(),
        tool_prefix=raw.get("mcp", {}).get("tool_prefix") or derived_prefix(name),
        version_file=raw.get("version_file", VERSION_FILE),
        respect_gitignore=raw.get("respect_gitignore"),
        hooks=hooks, notify=notify,
    )


def _places(raw: dict[str, Any], at: list[Any], base: Path, problems: _Problems) -> dict[str, Path]:
    """source, target, backup_dir, state_dir and log as absolute paths, each checked alone and against
    the others. A path with a problem is left out (the problem is recorded), so the rest are still checked."""
    places: dict[str, Path] = {}
    for key in (*TREES, "log"):
        if key in raw:
            value = _expand(raw[key], at + [key], base, problems)
            if value is not None and _fits(key, value, at, problems):
                places[key] = value
    target = places.get("target")
    if target is not None:
        sibling = target.parent / f".{target.name}"
        for key, default in (("backup_dir", f"{sibling}.backups"), ("state_dir", f"{sibling}.deploy-state")):
            if key not in raw:
                places[key] = Path(default)
    if "log" not in raw and "state_dir" in places:
        places["log"] = places["state_dir"] / "history.jsonl"
    if "source" in places:
        source = places["source"]
        if not source.is_dir():
            what = "is not a directory" if source.exists() else "does not exist"
            problems.add(at + ["source"], f"source directory {clip(str(source))} {what}; check the path")
    if target is not None:
        problem = _target_problem(target)
        if problem:
            problems.add(at + ["target"], problem)
    for key, what in _nesting(places, given={key for key in places if key in raw}):
        problems.add(at + [key], what)
    if "log" in raw and "log" in places:
        mine = _own_file(places)
        if mine:
            problems.add(at + ["log"], f"log {clip(str(places['log']))} is {mine}; point log at a file of its own "
                         "(the default is history.jsonl in state_dir)")
    return places


def _fits(key: str, path: Path, at: list[Any], problems: _Problems) -> bool:
    """False (and a problem recorded) when a component of `path` is longer than the filesystem allows.

    The kernel answers such a name with ENAMETOOLONG at the first mkdir or rename, in the
    middle of a deploy; the target's own name must also leave room for the
    `.<name>.deploy-<id>` directory MCP Deploy creates beside it.
    """
    for part in path.parts:
        if len(os.fsencode(part)) > NAME_MAX:
            problems.add(at + [key], f"the name '{clip(part)}' is {len(os.fsencode(part))} bytes; "
                         f"the filesystem allows at most {NAME_MAX} per name: shorten it")
            return False
    if key == "target" and len(os.fsencode(path.name)) > TARGET_NAME_MAX:
        problems.add(at + [key], f"the target's name '{clip(path.name)}' is {len(os.fsencode(path.name))} bytes; "
                     f"it may be at most {TARGET_NAME_MAX}, so that '.<name>.deploy-<operation id>' beside it "
                     f"fits in {NAME_MAX}: shorten it")
        return False
    return True


def _target_problem(target: Path) -> str | None:
    """Why the target cannot be deployed into, or None."""
    if target.is_symlink():
        return (f"target {clip(str(target))} is a symlink; point 'target' at the real directory "
                f"({clip(str(target.resolve()))}), where the files are written, not at the link")
    if target.exists() and not target.is_dir():
        return f"target {clip(str(target))} exists and is not a directory"
    blocker = _not_a_directory(target.parent)
    if blocker is not None:
        return f"target {clip(str(target))} cannot be created: {clip(str(blocker))} is not a directory"
    return None


def _nesting(places: dict[str, Path], given: set[str],
             resolve: Callable[[Path], str] = os.path.realpath) -> list[tuple[str, str]]:
    """(key, problem) for every pair of trees where one is, or is inside, the other, and for a log inside
    the source or target: a deploy would copy it, or manage it as a release file. Symlinks are resolved first.

    Only keys the user wrote are blamed: a default beside the target is wrong only when the target is.
    """
    real = {key: Path(resolve(value)) for key, value in places.items()}
    found = []
    for inner, outer in itertools.combinations(TREES, 2):
        if inner not in real or outer not in real:
            continue
        if real[inner] == real[outer]:
            key, other = (outer, inner) if outer in given else (inner, outer)
            found.append((key, f"{key} {clip(str(places[key]))} is the same directory as {other}; "
                          "each needs a directory of its own, side by side"))
            continue
        for a, b in ((inner, outer), (outer, inner)):
            if a in given and real[a].is_relative_to(real[b]) and not _state_beside_snapshots(a, b, real):
                found.append((a, f"{a} {clip(str(places[a]))} is inside {b} {clip(str(places[b]))}; "
                              "they must be separate trees, side by side"))
    for outer in ("source", "target"):
        if "log" in given and {"log", outer} <= real.keys() and real["log"].is_relative_to(real[outer]):
            found.append(("log", f"log {clip(str(places['log']))} is inside {outer} {clip(str(places[outer]))}; "
                          "keep the history outside the trees MCP Deploy reads and writes"))
    return found


def _own_file(places: dict[str, Path], resolve: Callable[[Path], str] = os.path.realpath) -> str | None:
    """What of MCP Deploy's own the log would be written into (its journal, a lock, the store's objects, ...),
    or None. Appending history lines there would corrupt state the tool trusts; links are resolved first.
    A log inside the source or target is `_nesting`'s to report."""
    log = Path(resolve(places["log"]))
    real = {key: Path(resolve(places[key])) for key in TREES if key in places}
    files: list[tuple[Path, str]] = []  # the file, and the temp or kept-aside names made from it
    trees: list[tuple[Path, str]] = []  # the directory and everything under it
    exact: list[tuple[Path, str]] = []
    if "state_dir" in real:
        state = real["state_dir"]
        exact.append((state, "MCP Deploy's state_dir"))
        files += [(state / LOCK_FILE, "a lock file of MCP Deploy"), (state / JOURNAL_FILE, "the journal of MCP Deploy"),
                  (state / HASH_CACHE_FILE, "the hash cache of MCP Deploy")]
        trees.append((state / RELEASES_DIR, "the release records of MCP Deploy"))
    if "backup_dir" in real:
        store = real["backup_dir"]
        exact.append((store, "the backup_dir"))
        files += [(store / STORE_MARKER, "the marker of the backup store"), (store / LOCK_FILE, "a lock file of MCP Deploy")]
        trees += [(store / "objects", "inside the backup store's objects"),
                  (store / "snapshots", "inside the backup store's snapshots")]
    if "target" in places:
        target = Path(resolve(places["target"].parent)) / places["target"].name
        files.append((target_lock_path(target), "a lock file of MCP Deploy"))
        stages = stage_path(target, "").name  # `.<target>.deploy-`: every stage's name starts so
        if any(p.parent == target.parent and p.name.startswith(stages) and p != target_lock_path(target)
               for p in (log, *log.parents)):
            return "inside a stage of MCP Deploy"
    for path, what in exact:
        if log == path:
            return what
    for path, what in files:
        if log.parent == path.parent and (log.name == path.name or log.name.startswith(path.name + ".")
                                          or log.name.startswith(f".{path.name}.tmp-")):
            return what
    for path, what in trees:
        if log.is_relative_to(path):
            return what
    return None


def _state_beside_snapshots(inner: str, outer: str, real: dict[str, Path]) -> bool:
    """state_dir in its own subdirectory of backup_dir (the README's layout) shares nothing with the
    backup store, which owns only backup_dir/objects and backup_dir/snapshots."""
    if (inner, outer) != ("state_dir", "backup_dir"):
        return False
    return real[inner].relative_to(real[outer]).parts[0] not in ("objects", "snapshots")


def _not_a_directory(path: Path) -> Path | None:
    """The first existing component of `path` that is not a directory (so nothing can be created under it)."""
    for candidate in [path, *path.parents]:
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None


def _check(spec: dict[str, Any], keys: list[Any], base: Path, problems: _Problems) -> CheckSpec:
    kind = spec["type"]
    files = _patterns(spec.get("files"), keys + ["files"], problems) or DEFAULT_FILES.get(kind, ())
    schema_path = None
    if "schema" in spec:
        schema_path = _expand(spec["schema"], keys + ["schema"], base, problems)
        if schema_path is not None and not schema_path.is_file():
            problems.add(keys + ["schema"], f"schema file {clip(str(schema_path))} does not exist")
    extra = {k: v for k, v in spec.items() if k not in {"type", "name", "files", "schema", "run", "timeout"}}
    return CheckSpec(
        type=kind, name=spec.get("name") or kind,
        files=files, schema=schema_path, run=spec.get("run"),
        timeout=float(spec.get("timeout", DEFAULT_TIMEOUT)), options=extra,
    )


def _notifier(spec: dict[str, Any], keys: list[Any], problems: _Problems) -> Notifier:
    """A notify entry; ${ENV} in the URL and header values expands (webhook URLs often carry a token)."""
    headers = {str(k): _expand_text(str(v), keys + ["headers", k], problems) for k, v in spec.get("headers", {}).items()}
    url = _expand_text(spec["url"], keys + ["url"], problems) if "url" in spec else None
    if url is not None and not _ENV_REF.search(url) and not re.match(r"https?://[^/?#]", url, re.IGNORECASE):
        scheme = clip(url.partition(":")[0], 20)  # never the rest: a webhook URL often carries a token
        problems.add(keys + ["url"], f"expected an http:// or https:// URL, not one starting '{scheme}:'")
    return Notifier(type=spec["type"], on=tuple(spec.get("on", NOTIFY_EVENTS)), url=url, headers=headers,
                    run=spec.get("run"), timeout=float(spec.get("timeout", DEFAULT_NOTIFY_TIMEOUT)))


def _expand_text(value: str, keys: list[Any], problems: _Problems) -> str:
    """${ENV} expanded in a value that is not a path (an unset variable is a problem, never "")."""
    unset = [var for var in _ENV_REF.findall(value) if var not in os.environ]
    if unset:
        problems.add(keys, f"environment variable ${{{clip(unset[0])}}} is not set; export it or write the value out")
        return value
    return _ENV_REF.sub(lambda m: os.environ[m.group(1)], value)


def _whoami() -> str:
    try:
        import getpass

        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return str(os.getuid())

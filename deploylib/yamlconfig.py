"""deploy.yaml's YAML: parsed strictly, and the line of a key for messages.

Its own module because importing PyYAML is a fifth of the CLI's start-up: a config whose
exact bytes passed before is taken from its validated mark already parsed (config.py), and
then nothing here is imported.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .profile import clip

MAX_VALUES = 100_000  # YAML values once aliases are expanded: bounds a "billion laughs" alias bomb


def parse(path: Path, text: str) -> Any:
    """The config's data; every YAML problem a ConfigError naming the file (and the line, where known)."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except _Refused as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: YAML syntax error: {clip(problem)}; fix the YAML and rerun") from None
    except RecursionError:
        raise ConfigError(f"{path}: YAML is nested too deeply to read; a deploy.yaml needs a few levels") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise ConfigError(f"{path}: YAML value error: {clip(str(exc))}; fix the value and rerun") from None
    if data is None:
        raise ConfigError(f"{path}: config is empty; it needs a 'profiles:' mapping")
    return data


class _Refused(Exception):
    """A YAML document refused before it is built (too large once its aliases are expanded)."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (YAML keeps the last one silently, hiding a typo)
    and documents whose aliases expand beyond MAX_VALUES values (an alias bomb)."""

    def construct_document(self, node: yaml.Node) -> Any:
        _check_expansion(node)
        return super().construct_document(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:  # explicit keys only: a `<<` merge may be overridden on purpose
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None,
                        f"duplicate key '{clip(key_node.value)}' (YAML would silently keep only the last one)",
                        key_node.start_mark)
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a document that refers to itself or expands beyond MAX_VALUES values.

    The composer shares one node per anchor, so nine lines of nested aliases build a
    billion-element structure that every later step (schema check, messages) walks.
    Sizes are counted per node, once, so this check costs one pass over the file.
    """
    sizes: dict[int, int] = {}
    busy: set[int] = set()

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in busy:
            raise _Refused(f"YAML alias at line {node.start_mark.line + 1} refers to itself; "
                           "a deploy.yaml cannot be recursive")
        busy.add(id(node))
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_VALUES:
                raise _Refused(f"YAML expands to more than {MAX_VALUES} values once its aliases are "
                               "resolved (an alias bomb?); write shared settings out once instead of "
                               "nesting aliases")
        busy.discard(id(node))
        sizes[id(node)] = total
        return total

    size(root)


def line_of(text: str, keys: list[Any]) -> int:
    """The 1-based line of the YAML node at `keys` (or of its closest existing parent)."""
    node = _compose(text)
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
    return line + 1


@lru_cache(maxsize=1)
def _compose(text: str) -> yaml.Node | None:
    """The node tree of the config (composed once for all the problems of one run)."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None

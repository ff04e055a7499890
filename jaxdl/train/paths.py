"""Parameter paths and the patterns that select them (for loading, freezing and per-group rates).

A leaf of a parameter tree is named by its path, the dict keys joined by "/": `conv_0/kernel`,
`head/bias`, `norm_1/mean` (in `batch_stats`). A pattern is a shell glob (`fnmatch`: `*`, `?`,
`[...]`) matched against the whole path or any leading part of it, so `head` selects
`head/kernel` and `head/bias`, and `conv_*` every convolution. Patterns are read in order and the
last one that matches decides; a pattern starting with `!` deselects, as in `.gitignore`:
`("*", "!head")` selects everything but the head.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any

import jax

from jaxdl.errors import InputError

PyTree = Any


def path_name(path: tuple) -> str:
    """The "/"-joined name of a key path from `jax.tree_util` (dict keys, attributes, indices)."""
    parts = []
    for key in path:
        for attribute in ("key", "name", "idx"):
            if hasattr(key, attribute):
                parts.append(str(getattr(key, attribute)))
                break
        else:
            parts.append(str(key))
    return "/".join(parts)


def leaves_by_path(tree: PyTree) -> dict[str, Any]:
    """{path: leaf} of every leaf of `tree`, in the tree's own order."""
    return {path_name(path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def tree_from_paths(tree: PyTree, values: Mapping[str, Any]) -> PyTree:
    """`tree` with each leaf replaced by `values[path]` (every path of `tree` must be in `values`)."""
    return jax.tree_util.tree_map_with_path(lambda path, _: values[path_name(path)], tree)


def pattern_matches(pattern: str, path: str) -> bool:
    """Whether the glob `pattern` (without "!") matches `path` or one of its leading parts."""
    parts = path.split("/")
    return any(fnmatch.fnmatchcase("/".join(parts[:end]), pattern) for end in range(1, len(parts) + 1))


def selected(path: str, patterns: Sequence[str]) -> bool:
    """Whether `patterns` select `path`: the last pattern that matches decides ("!" deselects)."""
    chosen = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        if pattern_matches(pattern[1:] if negated else pattern, path):
            chosen = not negated
    return chosen


def check_patterns(where: str, patterns: Any, paths: Sequence[str]) -> tuple[str, ...]:
    """The patterns as a tuple of strings, each of which matches at least one of `paths`.

    A pattern that matches nothing is almost always a typo, so it is an InputError that lists
    the names the tree does have.
    """
    if isinstance(patterns, str) or not isinstance(patterns, (tuple, list)):
        raise InputError(where, "wrong type", got=patterns, expected='a tuple of path patterns such as ("head",)')
    for pattern in patterns:
        if not isinstance(pattern, str) or pattern in ("", "!"):
            raise InputError(where, "wrong type", got=pattern, expected="a non-empty path pattern string")
        bare = pattern[1:] if pattern.startswith("!") else pattern
        if not any(pattern_matches(bare, path) for path in paths):
            raise InputError(where, "pattern matches no parameter", got=pattern,
                             expected="one of the model's layers: " + ", ".join(top_level_names(paths)))
    return tuple(patterns)


def top_level_names(paths: Sequence[str]) -> list[str]:
    """The distinct first parts of `paths`, in order (the model's top-level layers)."""
    return list(dict.fromkeys(path.split("/")[0] for path in paths))


def module_paths(paths: Sequence[str]) -> list[str]:
    """The distinct parents of the leaf `paths` (the layers that own them), in order."""
    return list(dict.fromkeys(path.rsplit("/", 1)[0] for path in paths if "/" in path))

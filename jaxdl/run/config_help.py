"""`--help` of an experiment: every config key with its default and its comment, grouped by section.

A key's comment is the `# comment` at the end of the line of its config file that sets it (or the
comment lines just above that line), else its line in the docstring of the `jaxdl.run.config`
helper that adds it (`add_data_section`, ...: lines `section.key: text`). The defaults are those
of the config (and variant) that `--config` names.
"""

from __future__ import annotations

import ast
import inspect
import io
import re
import tokenize

import ml_collections

from jaxdl.errors import InputError
from jaxdl.run import config as config_lib
from jaxdl.train import sweep

# The helpers whose docstrings describe the keys they add, as lines `section.key[, section.key]: text`.
DOCUMENTED_HELPERS = (config_lib.add_data_section, config_lib.add_pipeline_keys, config_lib.add_training_sections,
                      config_lib.add_optimizer_section, config_lib.add_augment_keys, sweep.default_config)
KEY_LINE = re.compile(r"^((?:[a-z_]+\.)+[a-z_]+(?:, (?:[a-z_]+\.)+[a-z_]+)*): (.+)$")
TOP_LEVEL = "(top level)"
# The keys every experiment shares (DESIGN.md) that no helper adds: their comment when the file has none.
SHARED_KEYS = {
    "experiment": "the experiment's name (the prefix of the default workdir runs/NAME-TIME)",
    "seed": "every random number of the run (initialisation, data order, dropout) comes from it",
    "model.name": "the model family (jaxdl.models)",
    "model.dtype": "compute: float32 | bfloat16 | float16; parameters stay float32 (docs/models.md)",
    "model.activation": "relu | tanh | sigmoid | gelu | elu | selu | silu | softplus | leaky_relu | linear",
    "model.dropout": "the dropout rate in training (0 = none)",
    "sweep.seeds": "members per setting, with seeds seed, seed+1, ... (docs/sweep.md)",
    "sweep.learning_rate": "a tuple of peak learning rates to train side by side; () = optimizer.learning_rate",
    "sweep.weight_decay": "a tuple of weight decays (L2); () = optimizer.weight_decay",
    "sweep.l1": "a tuple of L1 rates; () = optimizer.l1",
}


def helper_comments() -> dict[str, str]:
    """{dotted key: text} from the docstrings of DOCUMENTED_HELPERS."""
    found: dict[str, str] = {}
    for helper in DOCUMENTED_HELPERS:
        keys: list[str] = []
        for line in (inspect.getdoc(helper) or "").splitlines():
            match = KEY_LINE.match(line.strip())
            if match:
                keys = match.group(1).split(", ")
                text = match.group(2)
                if text.startswith("see ") or text == "as given.":
                    keys = []
                for key in keys:
                    found[key] = text
            elif line.strip() and keys:
                for key in keys:
                    found[key] += " " + line.strip()
            else:
                keys = []
    return found


def dotted(node: ast.expr) -> str | None:
    """`config.a.b` -> "a.b"; None for anything not rooted at the name `config`."""
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id == "config" and names:
        return ".".join(reversed(names))
    return None


def source_comments(path: str) -> dict[str, str]:
    """{dotted key: comment} of the assignments `config.a.b = ...` in a config file (the first of each
    key, which sets its default; the variants come later)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    comments: dict[int, tuple[str, bool]] = {}  # line -> (text, alone on its line)
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = (token.string.lstrip("#").strip(), token.line.strip().startswith("#"))
    assignments = sorted((node for node in ast.walk(ast.parse(text)) if isinstance(node, ast.Assign)
                          and len(node.targets) == 1), key=lambda node: node.lineno)
    found: dict[str, str] = {}
    for node in assignments:
        key = dotted(node.targets[0])
        if key is None or key in found:
            continue
        comment = trailing(comments, node.lineno, node.end_lineno) or leading(comments, node.lineno)
        if comment:
            found[key] = comment
        for inner in literal_keys(node.value):  # ml_collections.ConfigDict({"a": 1,  # comment
            name, line = inner
            if line in comments and not comments[line][1]:
                found.setdefault(f"{key}.{name}", comments[line][0])
    return found


def trailing(comments: dict[int, tuple[str, bool]], first: int, last: int) -> str:
    for line in (last, first):
        if line in comments and not comments[line][1]:
            return comments[line][0]
    return ""


def leading(comments: dict[int, tuple[str, bool]], line: int) -> str:
    block = []
    while line - 1 in comments and comments[line - 1][1]:
        line -= 1
        block.insert(0, comments[line][0])
    return " ".join(block)


def literal_keys(value: ast.expr) -> list[tuple[str, int]]:
    """(key, line of its value) of a dict literal, also inside a call such as ConfigDict({...})."""
    if isinstance(value, ast.Call) and value.args:
        value = value.args[0]
    if not isinstance(value, ast.Dict):
        return []
    return [(k.value, v.end_lineno) for k, v in zip(value.keys, value.values, strict=True)
            if isinstance(k, ast.Constant) and isinstance(k.value, str)]


def key_comments(path: str) -> dict[str, str]:
    """{dotted key: comment} for the config file at `path` (its own comments first, then the helpers')."""
    return {**SHARED_KEYS, **helper_comments(), **source_comments(path)}


def config_help(config: ml_collections.ConfigDict, path: str, variant: str = "") -> str:
    """The text that lists every key of `config` with its default and comment, grouped by section."""
    comments = key_comments(path)
    flat = config_lib.flatten(config.to_dict())
    groups: dict[str, list[str]] = {}
    for key in flat:
        groups.setdefault(key.split(".")[0] if "." in key else TOP_LEVEL, []).append(key)
    width = min(48, max(len(f"{key} = {flat[key]!r}") for key in flat))
    lines = [f"\nConfig keys of {path}" + (f":{variant}" if variant else "")
             + ", with their defaults; set any with --config.KEY=VALUE:"]
    for section in sorted(groups, key=lambda name: (name != TOP_LEVEL, list(groups).index(name))):
        header = f"\n{section}" + (f"  # {comments[section]}" if section in comments else "")
        lines.append(header)
        shown_sections = set()
        for key in groups[section]:
            parent = key.rsplit(".", 1)[0]
            if parent.count(".") and parent not in shown_sections:  # a nested section: model.encoder
                shown_sections.add(parent)
                lines.append(f"  {parent}.*" + (f"  # {comments[parent]}" if parent in comments else ""))
            entry = f"{key} = {flat[key]!r}"
            comment = comments.get(key, "")
            lines.append(f"  {entry:<{width}}  # {comment}" if comment else f"  {entry}")
    return "\n".join(lines)


def experiment_help(argv: list[str], default_config: str) -> str:
    """`--help` of an experiment: its config file's docstring (the variants) and `config_help` of the
    config that `--config` in `argv` names (default: `default_config`)."""
    try:
        flags, _ = config_lib.split_overrides([arg for arg in argv if arg not in ("-h", "--help")])
        path, variant = config_lib.resolve_config(flags.get("config") or default_config)
        config = config_lib.load_config(f"{path}:{variant}" if variant else path)
    except InputError as error:
        return f"(the config keys cannot be listed: {error})"
    with open(path, encoding="utf-8") as f:
        doc = ast.get_docstring(ast.parse(f.read())) or ""
    return "\n" + "\n".join(filter(None, [doc, config_help(config, path, variant)])) + "\n"

"""The package's shape: imports point down the data flow, no cycle, no name hides a module."""

from __future__ import annotations

import ast
import importlib
import pathlib
import pkgutil
import subprocess
import sys

import pytest

import jaxdl

PACKAGE = pathlib.Path(jaxdl.__file__).parent
# Each room may import only rooms of a lower rank (and itself).
RANKS = {"errors": 0, "paths": 0, "parallel": 1, "data": 2, "models": 3, "train": 4, "evaluate": 5, "transfer": 6,
         "report": 7, "deploy": 8, "run": 9, "compare": 10,
         # The live page trains and saves runs with run's writers, and `jaxdl playground` starts it: a peer of run.
         "playground": 9,
         "predict": 10, "export": 10, "drift": 10, "serve": 10, "explain": 10, "__init__": 11}


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def jaxdl_imports(path: pathlib.Path) -> list[tuple[str, int, bool]]:
    """(imported jaxdl module, line, inside a function) for every import statement in `path`."""
    tree = ast.parse(path.read_text())
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.ImportFrom) and child.module and child.module.split(".")[0] == "jaxdl":
                for alias in child.names:
                    candidate = f"{child.module}.{alias.name}"
                    found.append((candidate if is_module(candidate) else child.module, child.lineno, in_function))
            elif isinstance(child, ast.Import):
                found.extend((a.name, child.lineno, in_function) for a in child.names if a.name.startswith("jaxdl"))
            visit(child, nested)

    visit(tree, False)
    return found


def is_module(dotted: str) -> bool:
    relative = pathlib.Path(*dotted.split(".")[1:])
    return (PACKAGE / relative).is_dir() or (PACKAGE / relative.with_suffix(".py")).is_file()


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def all_files() -> list[pathlib.Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_imports_point_down_the_data_flow():
    wrong = []
    for path in all_files():
        here = module_name(path)
        for target, line, _ in jaxdl_imports(path):
            if RANKS[room(target)] > RANKS[room(here)]:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle_and_no_function_level_jaxdl_import():
    graph, local = {}, []
    for path in all_files():
        here = module_name(path)
        graph[here] = set()
        for target, line, in_function in jaxdl_imports(path):
            graph[here].add(target)
            # Matplotlib figures are imported lazily on purpose (report.build); nothing else may be.
            if in_function and target not in ("jaxdl.report.figures", "jaxdl.report.lr_curve",
                                              "jaxdl.report.question_figures"):
                local.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target} inside a function")
    assert not local, "\n".join(local)
    state, cycle = {}, []

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph or nxt == node or node.startswith(nxt + "."):
                continue  # a package's __init__ importing its own modules is not a cycle through them
            if state.get(nxt) == "open":
                cycle.append(" -> ".join([*trail, nxt]))
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycle, cycle


@pytest.mark.slow
def test_the_old_cycle_imports_from_either_end():
    """checkpoint -> evaluate -> fit -> checkpoint was a cycle; each end now imports first on its own."""
    for first in ("jaxdl.train.checkpoint", "jaxdl.evaluate.passes", "jaxdl.train.fit", "jaxdl"):
        result = subprocess.run([sys.executable, "-c", f"import {first}"], capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{first}: {result.stderr[-800:]}"


def test_no_public_name_shadows_a_module():
    shadowed = []
    for info in pkgutil.walk_packages(jaxdl.__path__, "jaxdl."):
        parent_name, _, child = info.name.rpartition(".")
        parent = importlib.import_module(parent_name)
        importlib.import_module(info.name)
        value = getattr(parent, child)
        if not isinstance(value, type(jaxdl)):
            shadowed.append(f"{parent_name}.{child} is {value!r}, not the module")
    assert not shadowed, "\n".join(shadowed)
    import jaxdl.evaluate as evaluate_package  # the example: it gave a function
    assert evaluate_package.__name__ == "jaxdl.evaluate"


def test_public_api_names_resolve():
    missing = [name for name in jaxdl.__all__ if not hasattr(jaxdl, name)]
    assert not missing


def test_only_the_command_line_changes_global_jax_settings():
    """Library and experiment code leave jax.config alone; cli.use_compilation_cache is the one place."""
    offenders = []
    for path in [*all_files(), *sorted((PACKAGE.parent / "experiments").glob("*.py"))]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "jax.config.update(" in line and path.name != "cli.py":
                offenders.append(f"{path.name}:{number}: {line.strip()}")
    assert not offenders, offenders

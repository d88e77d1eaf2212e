"""The shape of the code, checked by plain means: small modules and functions, no import
cycle, one table per fact, OpenCode's module holding only what is OpenCode's, and an
executor that knows no modes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "aethr"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 50


def _oversized(module: Path) -> dict[str, str]:
    """What in `module` is over a limit: `path` for the module, `path:name` for a function."""
    text = module.read_text()
    name = module.relative_to(PACKAGE).as_posix()
    found = {}
    if len(text.splitlines()) > MAX_MODULE_LINES:
        found[name] = f"{name} has grown past {MAX_MODULE_LINES} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found[f"{name}:{node.name}"] = f"{name}:{node.lineno} {node.name} is {length} lines"
    return found


@pytest.mark.parametrize("module", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_and_functions_stay_small(module: Path) -> None:
    assert list(_oversized(module).values()) == []


def _imports(module: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


NAMES = {_module_name(path): path for path in MODULES}


def _dependencies(path: Path, name: str = "") -> set[str]:
    """The aethr modules `path` imports, wherever the import stands: at module level, under
    `if TYPE_CHECKING:`, or inside a function. A function-level import (the house way to keep
    litellm, rich and the backends out of a cold start) defers *when* a module loads, not
    *whether* it depends on it, and a type named under TYPE_CHECKING is a dependency too, so all
    three count. `from aethr.backends import mock` depends on the module `mock`;
    `from aethr.backends import Request` on the package's `__init__`. A package's `__init__`,
    which Python runs before any of its submodules, is not counted as their dependency."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in NAMES}
        elif isinstance(node, ast.ImportFrom) and node.module in NAMES:
            for alias in node.names:
                found.add(f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in NAMES else node.module)
    return found - {name}


def test_no_import_cycle_in_aethr() -> None:
    graph = {name: _dependencies(path, name) for name, path in NAMES.items()}

    def cycle_from(start: str, path: list[str], seen: set[str]) -> list[str] | None:
        for nxt in sorted(graph[start]):
            if nxt == path[0]:
                return [*path, nxt]
            if nxt not in seen:
                seen.add(nxt)
                found = cycle_from(nxt, [*path, nxt], seen)
                if found:
                    return found
        return None

    cycles = [c for name in sorted(graph) if (c := cycle_from(name, [name], {name}))]
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_cycle_check_sees_each_kind_of_import(tmp_path: Path) -> None:
    """The check above would be blind if it missed a kind of import: each one is seen."""
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\nimport aethr.errors\nfrom aethr.backends import mock\n"
        "if TYPE_CHECKING:\n    from aethr.schema import Step\n"
        "def f() -> None:\n    from aethr import config\n"
    )
    found = _dependencies(module)
    assert found == {"aethr.errors", "aethr.backends.mock", "aethr.schema", "aethr.config"}


def test_one_table_per_fact() -> None:
    """The agent registry and the step-key table are the only lists of their facts."""
    from aethr import agents, rules
    from aethr.backends.agent import AgentBackend
    from aethr.backends.router import agent_backend
    from aethr.schema import BACKENDS, Step

    assert set(rules.STEP_KEYS) == set(Step.model_fields), "every step key says which step kinds take it"
    assert ("model", *agents.NAMES) == BACKENDS
    for agent in agents.AGENTS:
        made = agent_backend(agent.name, None)
        assert isinstance(made, AgentBackend) and type(made).__name__ == agent.adapter.rpartition(":")[2]
        assert (made.program, made.bin_variable) == (agent.program, agent.bin_variable)
        assert agent.npm in made.install
    facts = {fact for agent in agents.AGENTS for fact in (agent.bin_variable, agent.npm, agent.adapter)}
    spelled = {
        (p.relative_to(PACKAGE).as_posix(), fact)
        for p in MODULES
        if p.name != "agents.py"
        for fact in facts
        if fact in p.read_text()
    }
    assert spelled == set(), "an agent's facts are spelled out outside the registry"


def test_opencode_module_holds_only_what_is_opencodes() -> None:
    """Processes, pipes, signals and threads belong to the supervisor (`proc`) and the agent core."""
    imports = _imports(PACKAGE / "backends" / "opencode.py")
    assert not imports & {"subprocess", "signal", "threading", "queue", "shutil", "aethr.proc", "aethr.git"}
    assert "aethr.backends.agent" in imports


def test_the_executor_knows_no_modes() -> None:
    """It asks its backends; it never compares a mode or names preview, mock or live."""
    tree = ast.parse((PACKAGE / "executor.py").read_text())
    docstrings = {
        id(owner.body[0].value)
        for owner in ast.walk(tree)
        if isinstance(getattr(owner, "body", None), list)
        and owner.body  # type: ignore[attr-defined]
        and isinstance(owner.body[0], ast.Expr)  # type: ignore[attr-defined]
    }
    words: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            words.append(node.id)
        elif isinstance(node, ast.Attribute):
            words.append(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            words.append(node.value)
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            assert not any(isinstance(x, ast.Attribute) and x.attr == "mode" for x in sides), "a mode check"
    assert [w for w in words if any(m in w.lower() for m in ("preview", "mock", "live"))] == []

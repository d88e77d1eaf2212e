"""The shape of the code, checked by plain means: small modules and functions, OpenCode's
module holding only what is OpenCode's, and an executor that knows no modes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "aethr"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_MODULE_LINES = 350
MAX_FUNCTION_LINES = 60


@pytest.mark.parametrize("module", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_and_functions_stay_small(module: Path) -> None:
    text = module.read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{module.name} has grown past {MAX_MODULE_LINES} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{module.name}:{node.lineno} {node.name} is {length} lines"


def _imports(module: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


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

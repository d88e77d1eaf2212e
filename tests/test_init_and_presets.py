"""`aethr init`, presets, examples, `validate`, `schema` and `version`, through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from aethr import __version__
from aethr.config import load
from aethr.names import litellm_model_name
from tests.conftest import MOCK_TWO_STEPS, aethr, git, write_workflow

ROOT = Path(__file__).resolve().parent.parent
PRESETS = sorted(p.stem for p in (ROOT / "presets").glob("*.yaml"))
EXPECTED = [
    "add-tests",
    "custom",
    "debug-failing-test",
    "docs-sync",
    "plan-implement-review",
    "review-existing-diff",
]


def test_the_six_presets_exist() -> None:
    assert PRESETS == EXPECTED


def test_list_describes_each_preset(tmp_path: Path) -> None:
    result = aethr("init", "--list", cwd=tmp_path)
    assert result.code == 0
    lines = result.out.strip().splitlines()
    assert [line.split()[0] for line in lines] == EXPECTED
    assert all(len(line.split(maxsplit=1)) == 2 for line in lines), "every preset has a description"
    assert not (tmp_path / ".aethr.yaml").exists()


@pytest.mark.parametrize("preset", EXPECTED)
def test_each_preset_inits_and_validates(tmp_path: Path, preset: str) -> None:
    result = aethr("init", preset, cwd=tmp_path)
    assert result.code == 0, result.both
    written = (tmp_path / ".aethr.yaml").read_text()
    assert "$schema" not in written and str(ROOT) not in written, "no local install path in a shared file"
    assert not (tmp_path / ".aethr.schema.json").exists()
    assert aethr("validate", cwd=tmp_path).code == 0


def test_init_with_schema_writes_it_beside_and_points_there_relatively(tmp_path: Path) -> None:
    result = aethr("init", "custom", "--schema", cwd=tmp_path)
    assert result.code == 0, result.both
    first = (tmp_path / ".aethr.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=.aethr.schema.json"
    schema_file = tmp_path / ".aethr.schema.json"
    assert json.loads(schema_file.read_text())["title"].startswith("aethr workflow")


def test_existing_workflow_is_never_overwritten_without_force(tmp_path: Path) -> None:
    (tmp_path / ".aethr.yaml").write_text("# mine\n")
    result = aethr("init", "custom", cwd=tmp_path)
    assert result.code == 2
    assert "already exists" in result.err and "--force" in result.err
    assert (tmp_path / ".aethr.yaml").read_text() == "# mine\n"
    assert aethr("init", "custom", "--force", cwd=tmp_path).code == 0
    assert "workflow: custom" in (tmp_path / ".aethr.yaml").read_text()


def test_unknown_preset_lists_valid_names(tmp_path: Path) -> None:
    result = aethr("init", "plan-review", cwd=tmp_path)
    assert result.code == 2
    assert "unknown preset 'plan-review'" in result.err
    for name in EXPECTED:
        assert name in result.err
    assert not (tmp_path / ".aethr.yaml").exists()


def test_no_preset_without_terminal_lists_names(tmp_path: Path) -> None:
    result = aethr("init", cwd=tmp_path)
    assert result.code == 2
    assert "no preset given" in result.err
    assert "plan-implement-review" in result.err


@pytest.mark.parametrize("example", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_validates_and_routes_to_several_providers(tmp_path: Path, example: Path) -> None:
    result = aethr("validate", "--config", str(example), cwd=tmp_path)
    assert result.code == 0, result.both
    workflow = load(example)
    used = {step.role for step in workflow.steps}
    models = [workflow.model_of(role) for role in used]
    providers = {litellm_model_name(model).split("/")[0] for model in models if model}
    assert len(providers) >= 2, f"{example.name} should route its steps' roles to different providers: {providers}"


def test_schema_is_json_and_matches_the_shipped_file(tmp_path: Path) -> None:
    result = aethr("schema", cwd=tmp_path)
    assert result.code == 0
    schema = json.loads(result.out)
    assert set(schema["properties"]) == {
        "workflow",
        "roles",
        "models",
        "max_cost",
        "env_passthrough",
        "prices",
        "params",
        "isolate",
        "steps",
    }
    assert schema["additionalProperties"] is False
    shipped = json.loads((ROOT / "aethr" / "workflow.schema.json").read_text())
    assert schema == shipped, "regenerate aethr/workflow.schema.json with `aethr schema`"


def test_version_both_ways(tmp_path: Path) -> None:
    assert aethr("version", cwd=tmp_path).out.strip() == f"aethr {__version__}"
    assert aethr("--version", cwd=tmp_path).out.strip() == f"aethr {__version__}"


def test_help_and_usage_error_exit_codes(tmp_path: Path) -> None:
    assert aethr("--help", cwd=tmp_path).code == 0
    result = aethr("run", "--no-such-flag", cwd=tmp_path)
    assert result.code == 2
    assert "No such option" in result.err


def test_installed_wheel_ships_the_presets(tmp_path: Path) -> None:
    """Build the real wheel and run it from a plain install location, not the source tree."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("aethr-*.whl")
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    assert (target / "aethr" / "_presets" / "plan-implement-review.yaml").is_file()
    project = tmp_path / "project"
    project.mkdir()
    env = {"PYTHONPATH": str(target)}
    listed = aethr("init", "--list", cwd=project, env=env)
    assert listed.code == 0 and "docs-sync" in listed.out
    assert aethr("init", "docs-sync", "--schema", cwd=project, env=env).code == 0
    shipped = json.loads((target / "aethr" / "workflow.schema.json").read_text())
    assert json.loads((project / ".aethr.schema.json").read_text()) == shipped, "the installed schema is copied"
    assert aethr("validate", cwd=project, env=env).code == 0


@pytest.mark.parametrize(
    "path", sorted([*(ROOT / "examples").glob("*.yaml"), *(ROOT / "presets").glob("*.yaml")]), ids=lambda p: p.name
)
def test_every_example_and_preset_model_has_a_price(path: Path) -> None:
    """So a user's first live run shows what it cost, not "unknown"."""
    from aethr import pricing

    workflow = load(path)
    for role in workflow.roles:
        model = workflow.model_of(role)
        if model:
            assert pricing.price(litellm_model_name(model)) is not None, f"{path.name}: {model} has no price"


def test_a_one_off_run_of_a_preset_with_context_writes_nothing(repo: Path) -> None:
    (repo / "spec.md").write_text("SPEC-MARKER\n")
    git(repo, "add", "spec.md")
    git(repo, "commit", "-qm", "spec")
    args = ("run", "review it", "--preset", "review-existing-diff", "--context", "file:spec.md")
    result = aethr(*args, "--show-prompt", cwd=repo)
    assert result.code == 0, result.both
    assert "workflow review-existing-diff" in result.out and "SPEC-MARKER" in result.out
    assert aethr(*args, cwd=repo).code == 0
    assert git(repo, "status", "--porcelain", "--ignored") == "", "nothing was written in the repository"
    write_workflow(repo, MOCK_TWO_STEPS)
    wins = aethr(*args, cwd=repo)
    assert wins.code == 0 and "--preset review-existing-diff wins" in wins.err, wins.both
    assert "workflow review-existing-diff" in wins.out and "planner" not in wins.out
    bad = aethr("run", "x", "--preset", "review-existing-diff", "--context", "nonsense:x", cwd=repo)
    assert bad.code == 2 and "--context: unknown context source kind 'nonsense'" in bad.err, bad.both

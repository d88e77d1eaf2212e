"""A small stand-in for the GitHub Actions runner, enough to run aethr's example workflow and
its composite action (`action.yml`) step by step on a real checkout.

What it does as the runner does: steps run in order under `bash -eo pipefail`; after a
failed step only `if: always()` steps run; a step's `GITHUB_OUTPUT` file becomes
`steps.<id>.outputs.*`; `${{ … }}` takes values from `github.*`, `secrets.*`, `inputs.*`
and `steps.*`; a composite action gets its inputs' defaults, overridden by `with:`, the
calling step's `env:`, and `GITHUB_ACTION_PATH`. What it does not: a `uses:` of any other
action stands for what it does elsewhere (the checkout is the test's clone; Python is this
venv's), and steps named in `skip` (the install, which needs the package index) do not run.
An expression the test does not know fails the test rather than becoming empty.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ceiling, shell_script

ACTION_ROOT = Path(__file__).resolve().parent.parent
_EXPR = re.compile(r"\$\{\{(.+?)\}\}")


def expression(text: str, values: dict[str, str], unset: tuple[str, ...] = ()) -> str:
    """`${{ … }}` replaced from `values`; a key under an `unset` prefix (an output a step that
    ran did not set) is empty, as on GitHub; any other expression the test does not know fails it."""

    def one(match: re.Match[str]) -> str:
        key = match.group(1).strip()
        if key not in values and key.startswith(unset):
            return ""
        assert key in values, f"the workflow uses ${{{{ {key} }}}}, which this test does not provide"
        return values[key]

    return _EXPR.sub(one, text)


@dataclass
class Ran:
    """What a list of steps did: each step's exit code by name (composite steps as
    `outer/inner`), the outputs by step id, the action's outputs and everything printed."""

    codes: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    action_outputs: dict[str, str] = field(default_factory=dict)
    printed: str = ""
    failed: bool = False


@dataclass
class Runner:
    work: Path
    env: dict[str, str]
    github: dict[str, str]
    temp: Path
    skip: frozenset[str] = frozenset({"Install aethr"})

    def job(self, workflow: Path, job: str) -> Ran:
        steps: list[dict[str, Any]] = yaml.safe_load(workflow.read_text())["jobs"][job]["steps"]
        return self.steps(steps, {}, {}, prefix="")

    def steps(self, steps: list[dict[str, Any]], inputs: dict[str, str], env: dict[str, str], prefix: str) -> Ran:
        ran = Ran()
        for number, step in enumerate(steps):
            name = prefix + str(step.get("name") or step.get("uses") or f"step {number}")
            if ran.failed and "always()" not in str(step.get("if", "")):
                continue
            values = {**self.github, **{f"inputs.{k}": v for k, v in inputs.items()}}
            values |= {f"steps.{sid}.outputs.{k}": v for sid, out in ran.outputs.items() for k, v in out.items()}
            unset = tuple(f"steps.{sid}.outputs." for sid in ran.outputs)
            step_env = {**env, **{k: expression(str(v), values, unset) for k, v in step.get("env", {}).items()}}
            if "uses" in step:
                code = self._uses(step, values, step_env, name, ran)
            elif step.get("name") in self.skip:
                continue
            else:
                code = self._run(expression(step["run"], values, unset), step_env, step.get("id"), ran)
            ran.codes[name] = code
            ran.failed = ran.failed or code != 0
        return ran

    def _uses(self, step: dict[str, Any], values: dict[str, str], env: dict[str, str], name: str, ran: Ran) -> int:
        uses = str(step["uses"])
        if not (uses == "./" or uses.split("@")[0].endswith("/aethr")):
            return 0  # actions/checkout, actions/setup-python: the test's clone and venv stand in
        action: dict[str, Any] = yaml.safe_load((ACTION_ROOT / "action.yml").read_text())
        given = {k: expression(str(v), values) for k, v in (step.get("with") or {}).items()}
        unknown = set(given) - set(action["inputs"])
        assert not unknown, f"{name} passes inputs the action does not declare: {sorted(unknown)}"
        inputs = {k: expression(str(spec.get("default", "")), self.github) for k, spec in action["inputs"].items()}
        inputs |= given
        inner = self.steps(action["runs"]["steps"], inputs, {**env, "GITHUB_ACTION_PATH": str(ACTION_ROOT)}, f"{name}/")
        ran.codes |= inner.codes
        ran.printed += inner.printed
        scope = {**self.github}
        scope |= {f"steps.{sid}.outputs.{k}": v for sid, out in inner.outputs.items() for k, v in out.items()}
        ran.action_outputs = {
            key: _EXPR.sub(lambda m: scope.get(m.group(1).strip(), ""), str(spec["value"]))
            for key, spec in action.get("outputs", {}).items()
        }
        if step.get("id"):
            ran.outputs[str(step["id"])] = dict(ran.action_outputs)
        return 1 if inner.failed else 0

    def _run(self, script: str, env: dict[str, str], step_id: str | None, ran: Ran) -> int:
        output = self.temp / f"output-{len(ran.codes)}-{step_id or 'step'}"
        output.write_text("")
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            cwd=self.work,
            env={**self.env, **env, "GITHUB_OUTPUT": str(output)},
            capture_output=True,
            text=True,
            timeout=ceiling(180),
        )
        ran.printed += done.stdout + done.stderr
        if step_id:
            pairs = (line.partition("=") for line in output.read_text().splitlines() if "=" in line)
            ran.outputs[step_id] = {key: value for key, _, value in pairs}
        return done.returncode


def gh_stub(tmp_path: Path, comment_id: str = "") -> Path:
    """`gh` on PATH: it records its arguments (and keeps an `--input` file); listing the
    pull request's comments finds aethr's earlier comment `comment_id` (none when empty)."""
    folder = tmp_path / "stub-bin"
    folder.mkdir()
    calls = tmp_path / "gh-calls"
    body = (
        f'printf "%s\\n" "$*" >> "{calls}"\ncase "$*" in "api repos/o/r/issues/7/comments"*) echo "{comment_id}";; esac'
        # The file of `--input FILE` (a review's payload) is kept, as GitHub would receive it.
        f'\nprev=""; for a; do [ "$prev" = "--input" ] && cp "$a" "{tmp_path}/gh-input.json"; prev="$a"; done'
    )
    shell_script(folder / "gh", body)
    return folder


def action_as_workflow(path: Path) -> Path:
    """action.yml's steps as one job of a reusable workflow whose inputs are the action's,
    so that actionlint checks their syntax and expressions (`inputs.*`, `steps.*`)."""
    action = yaml.safe_load((ACTION_ROOT / "action.yml").read_text())
    inputs = {name: {"type": "string", "required": False} for name in action["inputs"]}
    workflow = {
        "on": {"workflow_call": {"inputs": inputs}},
        "jobs": {"action": {"runs-on": "ubuntu-latest", "steps": action["runs"]["steps"]}},
    }
    path.write_text(yaml.safe_dump(workflow, sort_keys=False))
    return path

"""Prompts that hit the cache: the pure parts, table-tested (the order of a prompt's
sections, which sources change as a run goes, where Anthropic's breakpoint goes and how
the prompt is sent with it). The whole path, through LiteLLM to prefix-matching fakes, is
in tests/test_cache.py; the preview's mark through the CLI is at the end here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aethr import prompt_cache, prompts
from aethr.config import parse
from aethr.names import parse_context_source
from aethr.results import Artifact, StepResult
from tests.conftest import aethr, write_workflow

LOOP = """\
workflow: w
roles: {reviewer: Mind the guide.}
steps:
  - id: review
    role: reviewer
    prompt: Check the change.
    repeat: {back_to: review, until_review_pass: true, max_iterations: 3}
"""


def _prompt(context: list[tuple[str, str]], history: bool = True, latest: bool = True) -> prompts.Prompt:
    wf = parse(LOOP)
    results = [StepResult("review", "reviewer", None, "Review status: revise", 1, 0.0)] if history else []
    artifact = Artifact("implement", ("a.py",), "1 file", "patch", False, "") if latest else None
    pairs = [(parse_context_source(source), f"<<< {source} >>>") for source, _ in context]
    return prompts.build(wf, wf.steps[0], "the task", results, artifact, pairs)


def test_the_stable_part_leads_and_the_volatile_part_follows() -> None:
    prompt = _prompt([("latest_diff", ""), ("file:GUIDE.md", ""), ("step:plan", ""), ("glob:*.md", "")])
    heads = [line for line in prompt.text.splitlines() if line.startswith("# ")]
    assert heads == [
        "# Role: reviewer",
        "# Guidance from the workflow 'w'",
        "# Task",
        "# Instruction for this step",
        "# Context",
        "# Context from this run",
        "# Earlier steps",
        "# Latest implementation",
        "# Reply format",
    ]
    stable, volatile = prompt.text[: prompt.stable], prompt.text[prompt.stable :]
    assert "<<< file:GUIDE.md >>>\n\n<<< glob:*.md >>>" in stable, "declared order kept within each part"
    assert "<<< latest_diff >>>\n\n<<< step:plan >>>" in volatile
    assert stable.endswith("\n") and volatile.startswith("\n# Context from this run\n")


CHANGING = [
    ("latest_diff", True),
    ("step:plan", True),
    ("step:review.findings", True),
    ("git_diff", True),
    ("git_diff:staged", True),
    ("git_diff:main", True),  # the working tree against a revision
    ("git_diff:main...HEAD", False),
    ("git_diff:v1..v2", False),
    ("file:README.md", False),
    ("glob:src/**/*.py", False),
]


@pytest.mark.parametrize(("source", "expected"), CHANGING)
def test_which_sources_change_as_the_run_goes(source: str, expected: bool) -> None:
    assert prompts.changing(parse_context_source(source)) is expected


def test_a_prompt_with_nothing_volatile_is_stable_whole_and_ends_where_it_would_with_more() -> None:
    wf = parse("workflow: w\nroles: {r: go}\nsteps:\n  - {id: s, role: r}\n")
    alone = prompts.build(wf, wf.steps[0], "task", [], None, [])
    assert alone.stable == len(alone.text) and alone.text.endswith("task\n")
    later = prompts.build(wf, wf.steps[0], "task", [StepResult("s", "r", None, "out", 1, 0.0)], None, [])
    assert later.text[: later.stable] == alone.text, "a loop's first pass marks the same prefix as its later ones"


LONG = "x" * 4 * 1100  # about 1,100 tokens
BREAKPOINTS = [
    ("anthropic/claude-sonnet-4-5", LONG, True),
    ("anthropic/claude-sonnet-4-5", "x" * 4 * 900, False),  # under Anthropic's 1,024
    ("anthropic/claude-3-5-haiku-20241022", LONG, False),  # its minimum is 2,048
    ("anthropic/claude-haiku-4-5", "x" * 4 * 4200, True),
    ("bedrock/anthropic.claude-sonnet-4-5", LONG, True),
    ("openrouter/anthropic/claude-sonnet-4.5", LONG, True),
    ("openai/gpt-4o-mini", LONG, False),  # caches by prefix without a marker
    ("gemini/gemini-2.5-flash", LONG, False),
    (None, LONG, False),
]


@pytest.mark.parametrize(("model", "stable", "marked"), BREAKPOINTS)
def test_the_breakpoint_goes_at_the_end_of_a_long_enough_stable_part(
    model: str | None, stable: str, marked: bool
) -> None:
    prompt = prompts.Prompt(stable + "# Earlier steps\nvolatile\n", len(stable))
    assert prompt_cache.cache_at(model, prompt) == (len(stable) if marked else None)


def test_the_marked_prompt_is_sent_as_two_blocks_that_join_to_its_text() -> None:
    text, at = "stable part\n\n# Earlier steps\nnew\n", 13
    blocks = prompt_cache.content(text, at)
    assert isinstance(blocks, list)
    assert "".join(block["text"] for block in blocks) == text
    assert blocks[0] == {"type": "text", "text": "stable part\n\n", "cache_control": {"type": "ephemeral"}}
    assert "cache_control" not in blocks[1]
    assert prompt_cache.content(text, None) == text
    assert prompt_cache.content(text, len(text)) == [
        {"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}
    ], "no empty block after a prompt that is stable whole"


GUIDE = "".join(f"Rule {n}: every public function has a docstring that says why it exists.\n" for n in range(300))


@pytest.mark.parametrize("model", ["anthropic:claude-sonnet-4-5", "openai:gpt-4o-mini"])
def test_show_prompt_prints_the_text_sent_and_marks_the_breakpoint(repo: Path, model: str) -> None:
    write_workflow(
        repo,
        f"workflow: w\nroles: {{reviewer: Review.}}\nmodels: {{reviewer: {model}}}\n"
        "steps:\n  - {id: review, role: reviewer, context: ['file:GUIDE.md', latest_diff]}\n",
    )
    (repo / "GUIDE.md").write_text(GUIDE)
    shown = aethr("run", "the task", "--show-prompt", cwd=repo)
    built = aethr("run", "the task", "--show-prompt", "--json", cwd=repo)
    assert shown.code == 0 and built.code == 0, shown.both + built.both
    event = next(e for e in map(json.loads, built.out.splitlines()) if e["event"] == "prompt_built")
    text, at = event["prompt"], event["cache_at"]
    if model.startswith("anthropic"):
        assert at == text.index("\n# Context from this run"), "the mark ends the stable part"
        assert text[:at] + prompt_cache.MARK + text[at:] in shown.out
        assert shown.out.count("cache breakpoint") == 1
    else:
        assert at is None and text in shown.out and "cache breakpoint" not in shown.out

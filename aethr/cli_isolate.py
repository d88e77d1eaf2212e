"""The `aethr run` options of an isolated run (`--isolate`, `--apply`, `--branch`,
`--allow-shared-tree`); what they do is `isolation`'s."""

from __future__ import annotations

from typing import Annotated

import typer

IsolateOpt = Annotated[
    bool | None,
    typer.Option(
        "--isolate/--no-isolate",
        help="Work in a worktree of its own; hand back a patch (default: the workflow's isolate:).",
    ),
]
ApplyOpt = Annotated[
    bool, typer.Option("--apply", help="With --isolate: apply the patch to the checkout if it applies cleanly.")
]
BranchOpt = Annotated[
    str | None, typer.Option("--branch", metavar="NAME", help="With --isolate: commit the result on a new branch NAME.")
]
AllowSharedOpt = Annotated[
    bool, typer.Option("--allow-shared-tree", help="Run in the checkout even beside another live run there.")
]

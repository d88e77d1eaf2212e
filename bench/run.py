"""aethr's benchmarks: every measurement paired with a floor measured in the same run.

    python bench/run.py            # all groups (the big repository is built once, ~1 min)
    python bench/run.py startup    # groups: startup big real commands isolate live scaling progress relay upstream

The `real` group needs a clone of a real 30,000+ file repository (see bench/real.py), and
`isolate` uses it when it is there (else the generated 20,000-file one); the
`upstream` group installs upstream Aethr 1.0.0 from the package registry once (bench/upstream.py).

Inputs are generated deterministically (fixed seed) under bench/.cache/. Each
figure is the median of several runs of a fresh process; peak memory is the
child's own maximum RSS (os.wait4). Results print as a Markdown table and are
written to bench/results/latest.md. These are benchmarks, not tests: nothing
here asserts a time.
"""

from __future__ import annotations

import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
RESULTS = ROOT / "bench" / "results"
PY = sys.executable
AETHR = [PY, "-m", "aethr"]
sys.path.insert(0, str(ROOT))

from tests.fake_openai import FakeOpenAI  # noqa: E402


@dataclass
class Sample:
    wall: float
    cpu: float
    rss_mib: float
    first_text: float | None = None


@dataclass
class Row:
    group: str
    name: str
    value: str
    floor: str
    ratio: str
    target: str
    met: str


ROWS: list[Row] = []


def run_once(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, marker: bytes | None = None) -> Sample:
    """One fresh process: wall time, CPU time and peak RSS of that child alone, and the time
    until `marker` first appears on its stdout (time to first token)."""
    full_env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", **(env or {})}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    first = None
    buffer = b""
    while chunk := proc.stdout.read1(65536):
        if marker is not None and first is None:
            buffer = (buffer + chunk)[-4096:]
            if marker in buffer:
                first = time.perf_counter() - start
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}")
    return Sample(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, first)


def median(cmd: list[str], cwd: Path, runs: int = 7, **kw: object) -> Sample:
    run_once(cmd, cwd, **kw)  # warm the page cache and __pycache__
    samples = [run_once(cmd, cwd, **kw) for _ in range(runs)]
    firsts = [s.first_text for s in samples if s.first_text is not None]
    return Sample(
        statistics.median(s.wall for s in samples),
        statistics.median(s.cpu for s in samples),
        max(s.rss_mib for s in samples),
        statistics.median(firsts) if firsts else None,
    )


def record(
    group: str,
    name: str,
    value: float,
    floor: float | None,
    target: float | None,
    unit: str = "s",
    floor_name: str = "",
) -> None:
    ratio = value / floor if floor else None
    met = "—"
    if target is not None:
        met = "yes" if (ratio if floor else value) <= target else "no"
    ROWS.append(
        Row(
            group,
            name,
            f"{value * 1000:.0f} ms" if unit == "s" else f"{value:.1f} {unit}",
            (f"{floor * 1000:.0f} ms" if unit == "s" else f"{floor:.1f} {unit}")
            + (f" ({floor_name})" if floor_name else "")
            if floor
            else "",
            f"{ratio:.2f}×" if ratio else "",
            (f"≤ {target:g}×" if floor else f"≤ {target:g} {unit}") if target is not None else "",
            met,
        )
    )


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def tiny_repo(path: Path, workflow: str) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    git(path, "init", "-q")
    (path / "README.md").write_text("# tiny\n")
    (path / "app.py").write_text("print('hi')\n")
    git(path, "add", "-A")
    git(path, "-c", "user.email=b@e", "-c", "user.name=b", "commit", "-qm", "init")
    (path / "app.py").write_text("print('hello')\n")
    (path / ".aethr.yaml").write_text(workflow)
    return path


def workflow(steps: int, context: str = "git_diff", model: str = "openai:gpt-4o-mini") -> str:
    lines = ["workflow: bench", "roles:", "  reviewer: Review.", "models:", f"  reviewer: {model}", "steps:"]
    for i in range(steps):
        lines += [
            f"  - id: s{i}",
            "    role: reviewer",
            f"    context: ['{context}']",
            "    history_visibility: latest",
        ]
    return "\n".join(lines) + "\n"


# --- groups -----------------------------------------------------------------------------------


DEPS_IN_USE = """
import typer, rich, yaml, dotenv
from pydantic import BaseModel
class Model(BaseModel):
    name: str
Model(name="floor")
"""


def bench_startup() -> None:
    work = Path(tempfile.mkdtemp(prefix="aethr-bench-"))
    repo = tiny_repo(work / "tiny", workflow(1))
    bare = median([PY, "-c", "pass"], work)
    deps = median([PY, "-c", "import typer, rich, pydantic, yaml, dotenv"], work)
    # `import pydantic` alone loads almost nothing (pydantic imports its parts on first use). A
    # command that validates anything with a pydantic model pays for those parts, so this second
    # floor makes each dependency usable: one pydantic model defined and one value validated.
    in_use = median([PY, "-c", DEPS_IN_USE], work)
    record("startup", "python -c pass", bare.wall, None, None)
    record("startup", "import typer, rich, pydantic, yaml, dotenv", deps.wall, None, None)
    record("startup", "  same, one pydantic model validated", in_use.wall, deps.wall, None, floor_name="deps")
    for name, cmd in [
        ("aethr --help", [*AETHR, "--help"]),
        ("aethr init custom --force", [*AETHR, "init", "custom", "--force"]),
        ("aethr validate", [*AETHR, "validate"]),
        ("aethr run --show-prompt (1 step)", [*AETHR, "run", "task", "--show-prompt"]),
        ("aethr run, mock (1 step)", [*AETHR, "run", "task"]),
    ]:
        cwd = work / "init" if "init" in cmd else repo
        cwd.mkdir(exist_ok=True)
        if "init" not in cmd:
            (repo / ".aethr.yaml").write_text(workflow(1))
        sample = median(cmd, cwd)
        record("startup", name, sample.wall, deps.wall, 1.3, floor_name="deps")
        if cmd[len(AETHR)] in ("validate", "run"):  # the commands that load the workflow's pydantic models
            record("startup", "  same, against deps in use", sample.wall, in_use.wall, None, floor_name="in use")
    shutil.rmtree(work)


BIG_FILES = 20_000
BIG_CHANGED = 2_000


def big_repo() -> Path:
    """20,000 files (~200 MB), committed, then 2,000 of them changed in the working tree."""
    path = CACHE / "big-repo-v1"
    if (path / ".done").exists():
        return path
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    rng = random.Random(1234)
    words = ["alpha", "beta", "gamma", "delta", "value", "result", "index", "count", "name", "item"]
    git(path, "init", "-q")
    for i in range(BIG_FILES):
        folder = path / f"pkg{i % 100:02d}" / f"mod{i % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        body = "".join(
            f"def f_{i}_{n}({rng.choice(words)}):\n    return {rng.choice(words)} + {rng.randint(0, 9999)}\n"
            for n in range(170)
        )
        (folder / f"file{i}.py").write_text(body)
    git(path, "add", "-A")
    git(path, "-c", "user.email=b@e", "-c", "user.name=b", "commit", "-qm", "big")
    files = sorted(path.glob("pkg*/mod*/*.py"))
    for f in rng.sample(files, BIG_CHANGED):
        f.write_text(f.read_text().replace("return", "return  1 +", 40))
    (path / ".aethr.yaml").write_text(
        workflow(1, "git_diff").replace("context: ['git_diff']", "context: ['git_diff', 'glob:**/*.py']")
    )
    (path / ".done").write_text("")
    return path


def bench_big() -> None:
    repo = big_repo()
    bare = median(["git", "diff"], repo, runs=5)
    preview = median([*AETHR, "run", "review", "--show-prompt"], repo, runs=5)
    record("big repo", "git diff (whole, bare)", bare.wall, None, None)
    record("big repo", "--show-prompt git_diff + glob:**/*.py", preview.wall, bare.wall, 1.0, floor_name="git diff")
    record("big repo", "--show-prompt peak memory", preview.rss_mib, None, 60, unit="MiB")
    estimate = median([*AETHR, "run", "review", "--estimate"], repo, runs=5)
    record(
        "big repo", "--estimate git_diff + glob:**/*.py", estimate.wall, preview.wall, 1.1, floor_name="--show-prompt"
    )


LITELLM_SCRIPT = """
import os, sys, litellm
r = litellm.completion(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True,
                       api_base=os.environ["OPENAI_API_BASE"])
for c in r:
    t = c.choices[0].delta.content if c.choices else None
    if t:
        sys.stdout.write(t); sys.stdout.flush()
"""

POST_SCRIPT = """
import json, os, sys, urllib.request
req = urllib.request.Request(os.environ["OPENAI_API_BASE"] + "/chat/completions", method="POST",
    data=json.dumps({"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]}).encode(),
    headers={"Content-Type": "application/json", "Authorization": "Bearer x"})
for line in urllib.request.urlopen(req):
    sys.stdout.write(line.decode()); sys.stdout.flush()
"""


def bench_live() -> None:
    server = FakeOpenAI([{"kind": "stream", "text": "BENCHMARK-ANSWER streamed from the loopback server."}]).start()
    env = {"AETHR_LIVE": "1", "OPENAI_API_KEY": "sk-bench-0123456789", "OPENAI_API_BASE": server.base_url}
    work = Path(tempfile.mkdtemp(prefix="aethr-bench-"))
    try:
        post = median([PY, "-c", POST_SCRIPT], work, runs=5, env=env, marker=b"BENCHMARK")
        bare = median([PY, "-c", LITELLM_SCRIPT], work, runs=5, env=env, marker=b"BENCHMARK")
        record("live", "bare HTTP POST (stdlib)", post.wall, None, None)
        record("live", "bare litellm.completion script", bare.wall, None, None)
        for steps in (1, 3):
            repo = tiny_repo(work / f"live{steps}", workflow(steps))
            sample = median([*AETHR, "run", "task"], repo, runs=5, env=env, marker=b"BENCHMARK")
            target = 0.6 if steps == 1 else None
            record("live", f"aethr run, live, {steps} step(s)", sample.wall, bare.wall, target, floor_name="litellm")
            if sample.first_text is not None and bare.first_text is not None:
                record(
                    "live",
                    f"  time to first token, {steps} step(s)",
                    sample.first_text,
                    bare.first_text,
                    None,
                    floor_name="litellm",
                )
    finally:
        server.stop()
        shutil.rmtree(work)


def bench_scaling() -> None:
    work = Path(tempfile.mkdtemp(prefix="aethr-bench-"))
    try:
        times = {}
        for steps in (1, 3, 10, 30):
            repo = tiny_repo(work / f"s{steps}", workflow(steps, "file:README.md"))
            times[steps] = median([*AETHR, "run", "task"], repo, runs=5).wall
            record("scaling", f"mock run, {steps} step(s)", times[steps], None, None)
        per_step = (times[30] - times[1]) / 29
        record("scaling", "overhead per extra step (mock)", per_step * 1000, None, 5, unit="ms")
        for mb in (1, 10, 100):
            repo = tiny_repo(work / f"ctx{mb}", workflow(1, "glob:data/**/*.txt"))
            data = repo / "data"
            data.mkdir()
            rng = random.Random(mb)
            line = "".join(rng.choice("abcdefghij ") for _ in range(99)) + "\n"
            per_file = 1_000_000
            for i in range(mb):
                (data / f"part{i:03d}.txt").write_text(line * (per_file // len(line)))
            sample = median([*AETHR, "run", "task", "--show-prompt"], repo, runs=5)
            record("scaling", f"--show-prompt over {mb} MB of matched files", sample.wall, None, None)
        repo = tiny_repo(work / "render", workflow(1, "file:README.md"))
        small = work / "small.json"
        small.write_text(json.dumps(["ok"]))
        big = work / "big.json"
        big.write_text(json.dumps([" ".join("word" for _ in range(200_000)) + "\n"]))
        base = median([*AETHR, "run", "task"], repo, runs=5, env={"AETHR_MOCK_RESPONSES": str(small)})
        large = median([*AETHR, "run", "task"], repo, runs=5, env={"AETHR_MOCK_RESPONSES": str(big)})
        record("scaling", "render a 1 MB streamed answer (CPU, plain)", large.cpu - base.cpu, None, 1.0, unit="s CPU")
    finally:
        shutil.rmtree(work)


def bench_real() -> None:
    from bench import real

    real.run(CACHE, median, record, AETHR)


def bench_isolate() -> None:
    from bench import isolate, real

    clone = real.find(CACHE)
    if clone is not None:
        tracked = real.prepare(clone)
        isolate.run(clone, f"{clone.name}, {tracked:,} files, 400 changes", median, record, AETHR)
    else:
        isolate.run(big_repo(), f"generated, {BIG_FILES:,} files, {BIG_CHANGED:,} changed", median, record, AETHR)


def bench_commands() -> None:
    from bench import commands

    commands.run(median, record, AETHR, tiny_repo)


def bench_relay() -> None:
    from bench import relay

    relay.run(record)


def bench_upstream() -> None:
    from bench import upstream

    upstream.run(sys.modules[__name__])


def bench_progress() -> None:
    from bench import progress

    progress.run(median, record, AETHR, tiny_repo)


GROUPS: dict[str, Callable[[], None]] = {
    "startup": bench_startup,
    "big": bench_big,
    "real": bench_real,
    "commands": bench_commands,
    "isolate": bench_isolate,
    "live": bench_live,
    "scaling": bench_scaling,
    "relay": bench_relay,
    "upstream": bench_upstream,
    "progress": bench_progress,
}


def table() -> str:
    head = "| group | measurement | value | floor (same run) | ratio | target | met |\n|---|---|---|---|---|---|---|\n"
    body = "".join(
        f"| {r.group} | {r.name} | {r.value} | {r.floor} | {r.ratio} | {r.target} | {r.met} |\n" for r in ROWS
    )
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"
    return f"Measured {time.strftime('%Y-%m-%d')} on {machine}.\n\n{head}{body}"


def main() -> None:
    chosen = sys.argv[1:] or list(GROUPS)
    for name in chosen:
        print(f"… {name}", file=sys.stderr, flush=True)
        GROUPS[name]()
    text = table()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()

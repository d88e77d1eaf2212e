"""The `upstream` group: aethr paired against upstream Aethr 1.0.0 in one run.

Upstream comes from the package registry, into a venv of its own under bench/.cache:

    pip download --no-deps --python-version 3.12 --only-binary=:all: aethr==1.0.0
    pip install --ignore-requires-python aethr-1.0.0-py3-none-any.whl

(1.0.0 says it needs Python 3.12; it runs on 3.11.) Both installs are byte-compiled
before anything is timed. Each pair of samples runs the two back to back, alternating
which goes first, so a machine that gets busier mid-run slows both alike; the figure is
the ratio of the medians of the child's own CPU time (user + system, from wait4), which
a shared machine disturbs far less than wall time. Wall time is shown beside it.
"""

from __future__ import annotations

import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

VERSION = "1.0.0"


def install(cache: Path) -> Path:
    """The upstream `aethr` script, installed once into bench/.cache/upstream-venv."""
    venv = cache / "upstream-venv"
    script = venv / "bin" / "aethr"
    if (venv / ".done").exists():
        return script
    wheels = cache / "upstream-dl"
    if not any(wheels.glob(f"aethr-{VERSION}-*.whl")):  # downloaded once, kept in the cache
        subprocess.run([sys.executable, "-m", "pip", "--quiet", "download", "--no-deps", "--python-version", "3.12",
                        "--only-binary=:all:", f"aethr=={VERSION}", "-d", str(wheels)], check=True)  # fmt: skip
    wheel = next(wheels.glob(f"aethr-{VERSION}-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "--quiet", "install",
                    "--ignore-requires-python", str(wheel)], check=True)  # fmt: skip
    subprocess.run([str(venv / "bin" / "python"), "-m", "compileall", "-q", str(venv / "lib")],
                   check=True, capture_output=True)  # fmt: skip
    (venv / ".done").write_text(VERSION)
    return script


def compile_ours(root: Path) -> None:
    """Our install byte-compiled too (site-packages and the aethr sources)."""
    for folder in {Path(p) for p in sys.path if p.endswith("site-packages")} | {root / "aethr"}:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(folder)], check=True, capture_output=True)


Pair = tuple[tuple[float, float], tuple[float, float]]


def paired(run_once: Callable[..., Any], ours: list[str], theirs: list[str], cwd: Path, runs: int, **kw: Any) -> Pair:
    """Medians (cpu, wall) of ours and of theirs, sampled in alternating pairs."""
    run_once(ours, cwd, **kw), run_once(theirs, cwd, **kw)  # warm caches
    mine, other = [], []
    for i in range(runs):
        first, second = (ours, theirs) if i % 2 == 0 else (theirs, ours)
        a, b = run_once(first, cwd, **kw), run_once(second, cwd, **kw)
        (mine, other)[i % 2].append(a)
        (other, mine)[i % 2].append(b)
    med = statistics.median
    return (med(s.cpu for s in mine), med(s.wall for s in mine)), (
        med(s.cpu for s in other),
        med(s.wall for s in other),
    )


def files_repo(path: Path, count: int, changed: int, git: Callable[..., None]) -> Path:
    """`count` small files committed, `changed` of them edited in the working tree (fixed seed)."""
    if (path / ".done").exists():
        return path
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    git(path, "init", "-q")
    rng = random.Random(5000)
    files = []
    for i in range(count):
        f = path / f"pkg{i % 50:02d}" / f"mod{i}.py"
        f.parent.mkdir(exist_ok=True)
        f.write_text("".join(f"def f{n}():\n    return {rng.randint(0, 999)}\n" for n in range(20)))
        files.append(f)
    git(path, "add", "-A")
    git(path, "-c", "user.email=b@e", "-c", "user.name=b", "commit", "-qm", "files")
    for f in rng.sample(files, changed):
        f.write_text(f.read_text().replace("return", "return 1 +", 3))
    (path / ".done").write_text("")
    return path


def run(h: Any) -> None:
    """Every row of the issue's target table that this machine can measure; `h` is bench.run."""
    theirs = str(install(h.CACHE))
    compile_ours(h.ROOT)
    work = Path(tempfile.mkdtemp(prefix="aethr-bench-up-"))
    server = h.FakeOpenAI([{"kind": "stream", "text": "BENCHMARK-ANSWER from the loopback server."}]).start()
    live = {"AETHR_LIVE": "1", "OPENAI_API_KEY": "sk-bench-0123456789", "OPENAI_API_BASE": server.base_url}
    try:
        tiny = h.tiny_repo(work / "tiny", h.workflow(1))
        big = files_repo(h.CACHE / "files-5000-v1", 5_000, 500, h.git)
        (big / ".aethr.yaml").write_text(h.workflow(1, "git_diff"))
        cases = [
            ("mock run (1 step)", ["run", "task"], tiny, {}, 0.6),
            ("--help", ["--help"], tiny, {}, 0.25),
            ("--show-prompt, 5,000-file repository", ["run", "task", "--show-prompt"], big, {}, 0.6),
            ("live 1-step run", ["run", "task"], tiny, live, 0.4),
        ]
        for name, args, cwd, env, target in cases:
            (mine, other) = paired(h.run_once, [*h.AETHR, *args], [theirs, *args], cwd, 7, env=env)
            h.record("upstream", f"{name}, CPU", mine[0], other[0], target, floor_name="upstream")
            h.record("upstream", "  same, wall", mine[1], other[1], None, floor_name="upstream")
        untracked = h.tiny_repo(work / "untracked", h.workflow(1, "git_diff"))
        rng = random.Random(50)
        with (untracked / "big.bin").open("wb") as handle:  # in chunks: a child forked from a
            for _ in range(50):  # parent holding 50 MB would count them in its peak
                handle.write(rng.randbytes(1024 * 1024))
        memory = h.median([*h.AETHR, "run", "task", "--show-prompt"], untracked, runs=3)
        h.record("upstream", "peak memory, 50 MB untracked file", memory.rss_mib, None, 60, unit="MiB")
    finally:
        server.stop()
        shutil.rmtree(work)

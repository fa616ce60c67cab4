"""`make bench`, hostile input: the peak memory and time of validating the whole hostile corpus.

Place in the flow: a section of `python -m bench` (bench/__main__.py), the same at every scale (it
takes seconds). It builds three release repos with real git in a temporary folder: the example
pins alone; the example pins and every case of tests/hostile/ (one commit, symlinks and
submodules included); and the same with one more pin of 32 MiB. Each is validated by
`queries.validate` (what `releasectl validate` runs) in a fresh process of its own, which reports
its peak RSS (VmHWM) and its time: memory follows the pins, not what a hostile file claims (the
billion laughs is never expanded, the big files are never read). Nothing is asserted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "hostile"
GIANT_BYTES = 32 * 1024 * 1024


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@example.com"}
    env |= {"GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "b@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env).stdout


def build(folder: Path, *, corpus: bool, giant: bool) -> Path:
    """A release repo (a working clone is enough for validate) at one commit."""
    shutil.copytree(ROOT / "environments", folder / "environments")
    _git(ROOT, "init", "-q", "-b", "main", str(folder))
    gitlinks = []
    if corpus:
        for line in (CORPUS / "cases.tsv").read_text().splitlines()[1:]:
            name, placed, mode, _rule = line.split("\t")
            source = CORPUS / "pins" / (f"{name}.yaml" if mode == "file" else f"{name}.{mode}")
            target = folder / placed
            target.parent.mkdir(parents=True, exist_ok=True)
            if mode == "symlink":
                os.symlink(source.read_text(), target)
            elif mode == "submodule":
                gitlinks.append((source.read_text().strip(), placed))
            else:
                shutil.copyfile(source, target)
    if giant:
        with (folder / "environments/dev/giant.yaml").open("wb") as handle:
            handle.write(b"# " + b"x" * (GIANT_BYTES - 3) + b"\n")
    _git(folder, "add", "-A")
    for sha, path in gitlinks:
        _git(folder, "update-index", "--add", "--cacheinfo", f"160000,{sha},{path}")
    _git(folder, "commit", "-q", "-m", "release set")
    return folder


def validate_here(repo: Path) -> dict[str, Any]:
    """Run in a fresh process: validate once, report time, peak RSS and what was found."""
    from bench.measure import peak_rss_mb
    from controller.adapters.git import GitRepo
    from controller.app import queries

    started = time.perf_counter()
    result = queries.validate(GitRepo(repo))
    seconds = time.perf_counter() - started
    lines = [p.line() for p in result.problems]
    return {
        "seconds": round(seconds, 4),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "pins": result.pins,
        "problems": len(lines),
        "longest_line": max((len(line) for line in lines), default=0),
        "output_bytes": sum(len(line.encode()) + 1 for line in lines),
    }


def measure(log: Any, out: Path) -> list[dict[str, Any]]:
    cases = len((CORPUS / "cases.tsv").read_text().splitlines()) - 1
    variants = [
        ("example pins only", False, False),
        (f"example pins + the hostile corpus ({cases} cases)", True, False),
        ("example pins + the corpus + one 32 MiB pin", True, True),
    ]
    rows = []
    with tempfile.TemporaryDirectory(prefix="releasectl-bench-hostile-") as tmp:
        for i, (what, corpus, giant) in enumerate(variants):
            repo = build(Path(tmp) / f"repo{i}", corpus=corpus, giant=giant)
            proc = subprocess.run(
                [sys.executable, "-m", "bench.hostile", str(repo)], cwd=ROOT, check=True, capture_output=True, text=True
            )
            rows.append({"operation": "validate", "repo": what, **json.loads(proc.stdout)})
    log("\nhostile input: `validate` in a fresh process (peak RSS is VmHWM)")
    for r in rows:
        log(
            f"  {r['repo']:<48} {r['pins']:>3} pins {r['problems']:>3} problems  {r['seconds'] * 1000:7.1f} ms  "
            f"peak {r['peak_rss_mb']:6.1f} MB  longest line {r['longest_line']} chars"
        )
    base, hostile, giant = (r["peak_rss_mb"] for r in rows)
    log(f"  the corpus adds {hostile - base:.1f} MB to the peak; a 32 MiB pin adds {giant - hostile:.1f} MB")
    out.write_text(json.dumps(rows, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    print(json.dumps(validate_here(Path(sys.argv[1]))))

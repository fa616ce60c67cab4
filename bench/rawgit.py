"""The floor: the same work as the controller, done by raw git plumbing and nothing else.

Place in the flow: the right-hand column of every row `make bench` prints. bench/measure.py
times an operation through the controller's library API, then the same operation here, in the
same run, against a byte-identical copy of the controller's clone. Nothing here parses YAML or
validates anything: the floor is git's own I/O (subprocesses for plumbing, ONE long-lived
`git cat-file --batch` for blobs, read pipelined).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

ZERO = "0" * 40


class Plumbing:
    """Plumbing commands in one repository, each a plain `git` subprocess."""

    def __init__(self, git_dir: Path, branch: str = "main") -> None:
        self.dir = git_dir
        self.branch = branch
        self.tracking = f"refs/remotes/origin/{branch}"
        self.cat = CatFile(git_dir)

    def close(self) -> None:
        self.cat.close()

    def run(self, *args: str, data: bytes | None = None, env: dict[str, str] | None = None) -> bytes:
        out = subprocess.run(
            ["git", *args],
            cwd=self.dir,
            input=data,
            capture_output=True,
            check=True,
            env={**os.environ, **env} if env else None,
        )
        return out.stdout

    def text(self, *args: str, env: dict[str, str] | None = None) -> str:
        return self.run(*args, env=env).decode().strip()

    # -- reading --------------------------------------------------------------------------------------

    def rev_parse(self, rev: str) -> str:
        return self.text("rev-parse", rev)

    def ls_remote(self) -> str:
        return self.text("ls-remote", "origin", f"refs/heads/{self.branch}").split("\t", 1)[0]

    def fetch(self) -> str:
        self.run("fetch", "--quiet", "--no-tags", "origin", f"+refs/heads/{self.branch}:{self.tracking}")
        return self.rev_parse(self.tracking)

    def diff_tree(self, old: str, new: str, paths: Sequence[str]) -> list[str]:
        """New blob shas of the files changed between two commits under `paths`."""
        out = self.run("diff-tree", "-r", "-z", "--raw", "--no-abbrev", old, new, "--", *paths)
        return [blob for _path, blob in _changes(out.split(b"\0"))]

    def log_raw(self, rng: str, paths: Sequence[str], fmt: str = "%x01%H") -> list[tuple[str, str]]:
        """(path, new blob) of every change in a first-parent range, from ONE `git log --raw -z`."""
        out = self.run(
            "log",
            "--first-parent",
            "--diff-merges=first-parent",
            "--no-renames",
            "--raw",
            "-z",
            "--no-abbrev",
            f"--format={fmt}",
            rng,
            "--",
            *paths,
        )
        return _changes(out.split(b"\0"))

    def ls_tree(self, rev: str, paths: Sequence[str]) -> list[str]:
        """Blob shas of every file under `paths` at `rev`."""
        out = self.run("ls-tree", "-r", "-z", "--full-tree", rev, "--", *paths)
        blobs = []
        for entry in out.split(b"\0"):
            if entry:
                _mode, kind, rest = entry.split(b" ", 2)
                if kind == b"blob":
                    blobs.append(rest.split(b"\t", 1)[0].decode())
        return blobs

    # -- writing (a status commit, the way gitrepo does it, one subprocess per step) ---------------

    def commit_file(self, parent: str, path: str, blob: str, message: str, env: dict[str, str]) -> str:
        with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp:
            index = {"GIT_INDEX_FILE": os.path.join(tmp, "index"), **env}
            self.run("read-tree", parent, env=index)
            self.run("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=index)
            tree = self.text("write-tree", env=index)
            return self.run("commit-tree", tree, "-p", parent, data=message.encode(), env=index).decode().strip()

    def hash_object(self, data: bytes) -> str:
        return self.run("hash-object", "-w", "--stdin", data=data).decode().strip()

    def push(self, sha: str) -> bool:
        """True when the remote fast-forwarded to `sha`; False when it refused (never forced)."""
        done = subprocess.run(
            ["git", "push", "--porcelain", "origin", f"{sha}:refs/heads/{self.branch}"],
            cwd=self.dir,
            capture_output=True,
            check=False,
        )
        return done.returncode == 0


def _changes(tokens: list[bytes]) -> list[tuple[str, str]]:
    """(path, new blob) of each `--raw -z` record that did not delete its file."""
    changes: list[tuple[str, str]] = []
    i = 0
    while i < len(tokens):
        meta = tokens[i].lstrip(b"\n")
        if meta.startswith(b":") and i + 1 < len(tokens):
            new = meta[1:].split(b" ")[3].decode()
            if new != ZERO:
                changes.append((tokens[i + 1].decode(), new))
            i += 2
        else:
            i += 1
    return changes


class CatFile:
    """ONE long-lived `git cat-file --batch`; many reads are pipelined (a writer thread)."""

    def __init__(self, git_dir: Path) -> None:
        self.proc = subprocess.Popen(
            ["git", "cat-file", "--batch"], cwd=git_dir, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin = self.proc.stdin
        self.stdout = self.proc.stdout

    def read(self, sha: str) -> bytes:
        self.stdin.write(sha.encode() + b"\n")
        self.stdin.flush()
        return self._answer()

    def read_many(self, shas: Iterable[str]) -> int:
        """Read every object in `shas`; returns the bytes read (the content is dropped)."""
        wanted = list(shas)
        if len(wanted) <= 64:
            return sum(len(self.read(sha)) for sha in wanted)
        request = b"".join(s.encode() + b"\n" for s in wanted)

        def feed() -> None:
            self.stdin.write(request)
            self.stdin.flush()

        writer = threading.Thread(target=feed)
        writer.start()
        total = sum(len(self._answer()) for _ in wanted)
        writer.join()
        return total

    def _answer(self) -> bytes:
        header = self.stdout.readline().split()
        if len(header) != 3:
            raise KeyError(b" ".join(header).decode())
        data = self.stdout.read(int(header[2]) + 1)
        return data[:-1]

    def close(self) -> None:
        self.stdin.close()
        self.proc.wait()

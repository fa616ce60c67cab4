"""Streaming reads, so that Python's parsing overlaps git's walking.

Place in the flow: under SnapshotReader.advance (catch-up after many commits). `stream_log`
yields first-parent commits as `git log` prints them (newest first, no messages); a BlobFeed is a
`git cat-file --batch` that takes requests while the log still runs and hands back blobs as they
arrive, so the controller parses pins on one core while git walks history on the other.
"""

from __future__ import annotations

import io
import os
import queue
import subprocess
import threading
from collections.abc import Iterator, Sequence
from typing import IO

from controller.adapters.git._common import parse_log
from controller.core.history import CommitRecord
from controller.core.paths import FileChange, raw_changes
from controller.core.yamlio import TooLarge
from controller.errors import GitError

CHUNK = 1 << 16
PIPE_ROOM = 1 << 15


def stream_log(
    git_dir: str | os.PathLike[str], rev: str, since: str | None, paths: Sequence[str]
) -> Iterator[CommitRecord]:
    """First-parent commits in since..rev touching `paths`, newest first, as git produces them."""
    command = [
        "git",
        "log",
        "--first-parent",
        "--diff-merges=first-parent",
        "--no-renames",
        "--raw",
        "-z",
        "--no-abbrev",
        "--format=%x01%H%x00%P%x00%ae%x00%cI%x00%x00",  # no message: a catch-up does not need it
        f"{since}..{rev}" if since else rev,
        "--",
        *[p.rstrip("/") for p in paths],
    ]
    proc = subprocess.Popen(command, cwd=git_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    stdout = proc.stdout
    assert isinstance(stdout, io.BufferedReader)
    chunks: queue.Queue[bytes] = queue.Queue()

    def pump() -> None:
        """Drain git's output as fast as it comes, so git never waits on a full pipe while the
        consumer is busy parsing."""
        try:
            while chunk := stdout.read1(CHUNK):
                chunks.put(chunk)
        except (OSError, ValueError):
            pass
        finally:
            chunks.put(b"")

    # A small range (a poll after one merge) fits in the pipe: read it here, no thread. A big one
    # gets a pump thread once its output passes what the pipe could hold anyway.
    early = b""
    while len(early) < PIPE_ROOM and (piece := stdout.read1(CHUNK)):
        early += piece
    reader: threading.Thread | None = None
    if len(early) >= PIPE_ROOM:
        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
    else:
        chunks.put(b"")  # everything is in `early`
    pending = early  # bytes: a record start (0x01) never sits inside a UTF-8 sequence
    try:
        while True:
            cut = pending.rfind(b"\x01")
            if cut > 0:  # everything before the last record start is complete
                yield from parse_log(pending[:cut].decode("utf-8", "surrogateescape"))
                pending = pending[cut:]
            chunk = chunks.get()
            if not chunk:
                break
            pending += chunk
        yield from parse_log(pending.decode("utf-8", "surrogateescape"))
    finally:
        if proc.poll() is None:
            proc.kill()
        if reader is not None:
            reader.join()
        error = proc.stderr.read().decode(errors="replace").strip()
        code = proc.wait()
        stdout.close()
        proc.stderr.close()
    if code != 0:
        raise GitError(f"git log {rev} failed: {error}")


class BlobFeed:
    """A `git cat-file --batch` fed while other work goes on; blobs come back in request order."""

    def __init__(self, git_dir: str | os.PathLike[str], limit: int | None = None) -> None:
        self._limit = limit  # a blob over this many bytes streams past unkept, answered as TooLarge
        self._proc = subprocess.Popen(
            ["git", "cat-file", "--batch"], cwd=git_dir, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._stdin: IO[bytes] = self._proc.stdin
        self._asked: list[str] = []
        self._got = 0
        self._answers: queue.Queue[tuple[str, bytes | TooLarge] | BaseException] = queue.Queue()
        self._reader = threading.Thread(target=self._read, args=(self._proc.stdout,), daemon=True)
        self._reader.start()

    def want(self, shas: Sequence[str]) -> None:
        if shas:
            self._asked.extend(shas)
            self._stdin.write(("\n".join(shas) + "\n").encode())
            self._stdin.flush()

    def ready(self) -> Iterator[tuple[str, bytes | TooLarge]]:
        """Blobs that have arrived, without waiting."""
        while True:
            try:
                answer = self._answers.get_nowait()
            except queue.Empty:
                return
            yield self._take(answer)

    def rest(self) -> Iterator[tuple[str, bytes | TooLarge]]:
        """Every blob still to come; stops asking for more."""
        self._stdin.close()
        while self._got < len(self._asked):
            yield self._take(self._answers.get())

    def close(self) -> None:
        if not self._stdin.closed:
            self._stdin.close()
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()

    def _take(self, answer: tuple[str, bytes | TooLarge] | BaseException) -> tuple[str, bytes | TooLarge]:
        if isinstance(answer, BaseException):
            raise GitError(f"cat-file --batch: {answer}")
        self._got += 1
        return answer

    def _read(self, stdout: IO[bytes]) -> None:
        try:
            while header := stdout.readline():
                parts = header.split()
                if len(parts) != 3:
                    raise ValueError(b" ".join(parts).decode(errors="replace"))
                size = int(parts[2])
                if self._limit is not None and size > self._limit:
                    left = size + 1  # the object and its newline, read in chunks and dropped
                    while left > 0:
                        chunk = stdout.read(min(left, CHUNK))
                        if not chunk:
                            raise ValueError("cat-file ended inside an object")
                        left -= len(chunk)
                    self._answers.put((parts[0].decode(), TooLarge(size)))
                    continue
                data = stdout.read(size)
                stdout.read(1)
                self._answers.put((parts[0].decode(), data))
        except (ValueError, OSError) as exc:
            self._answers.put(exc)
        finally:
            stdout.close()

    def __enter__(self) -> BlobFeed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TreeDiff:
    """`git diff-tree -r` between two commits, started now, read later (it runs beside other work).

    For status files only the end state of a range matters, not each commit's step: one tree
    comparison instead of a per-commit walk.
    """

    def __init__(self, git_dir: str | os.PathLike[str], old: str, new: str, roots: Sequence[str]) -> None:
        paths = [r.rstrip("/") for r in roots]
        self._proc = subprocess.Popen(
            ["git", "diff-tree", "-r", "-z", "--raw", "--no-renames", "--no-abbrev", old, new, "--", *paths],
            cwd=git_dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def result(self) -> list[FileChange]:
        out, err = self._proc.communicate()
        if self._proc.returncode != 0:
            raise GitError(f"git diff-tree failed: {err.decode(errors='replace').strip()}")
        tokens = out.decode("utf-8", "surrogateescape").split("\0")
        return list(raw_changes(tokens))


class LogCall:
    """A `git log --raw` started now and read later, so it runs while Python parses."""

    def __init__(self, git_dir: str | os.PathLike[str], args: Sequence[str]) -> None:
        self._proc = subprocess.Popen(
            ["git", "log", *args], cwd=git_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )

    def result(self) -> list[CommitRecord]:
        out, err = self._proc.communicate()
        if self._proc.returncode != 0:
            raise GitError(f"git log failed: {err.decode(errors='replace').strip()}")
        return list(parse_log(out.decode("utf-8", "surrogateescape")))

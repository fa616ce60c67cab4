"""The git adapter: the only package that uses gitpython. Reading, and the class that joins it all.

Place in the flow: the first and the last step of a pass. It fetches the release repo, reads
files from a commit's tree (never a working tree), lists what changed in a range of first-parent
commits with ONE `git log --raw -z` per range, and writes status commits with plumbing (a
temporary index, `commit-tree`) and pushes them; a rejected push is fetched, replayed on the new
head and retried with backoff. It never force-pushes and never writes under environments/.
Blobs and commits are read through gitpython's long-lived `cat-file --batch` object database.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any

import git
from git.exc import GitCommandError, InvalidGitRepositoryError, NoSuchPathError

from controller.adapters.git._common import stderr_of
from controller.adapters.git._credentials import configure as configure_credentials
from controller.adapters.git._credentials import refuse_inline_password
from controller.adapters.git._signed import SignedMixin
from controller.adapters.git._stream import BlobFeed, LogCall, TreeDiff, stream_log
from controller.adapters.git._trail import TrailMixin
from controller.adapters.git._worktree import WorktreeMixin
from controller.adapters.git._write import WritingMixin
from controller.core.history import CommitRecord
from controller.core.paths import ENV_ROOT, STATUS_ROOT, FileChange
from controller.core.yamlio import TooLarge
from controller.errors import GitError, UsageError, redact

PIPELINE_FROM = 64  # below this many blobs, the warm object database is as fast
REGULAR = ("100644", "100755")  # file modes; 120000 is a symlink, 160000 a submodule (gitlink)


@dataclass
class Tree:
    """What `git ls-tree -r -l` lists: regular files, their sizes, and everything else apart."""

    files: dict[str, str] = field(default_factory=dict)  # path -> blob sha
    sizes: dict[str, int] = field(default_factory=dict)  # blob sha -> bytes
    special: dict[str, str] = field(default_factory=dict)  # path -> mode (symlinks, submodules)


def _more(stdout: IO[bytes], sha: str) -> bytes:
    chunk = stdout.read1(1 << 20)  # type: ignore[attr-defined]
    if not chunk:
        raise GitError(f"cat-file --batch ended early, before {sha}")
    return bytes(chunk)


class GitRepo(WritingMixin, WorktreeMixin, SignedMixin, TrailMixin):
    """A repository, opened once and kept: its object database keeps `cat-file --batch` warm."""

    def __init__(self, path: str | Path, *, branch: str = "main") -> None:
        try:
            self.repo = git.Repo(path)
        except (InvalidGitRepositoryError, NoSuchPathError) as exc:
            raise UsageError(f"{path}: not a git repository") from exc
        self.path = Path(path)
        self.branch = branch
        self.git: Any = self.repo.git
        self.signing_key: str | None = None  # an ssh private key: status commits are signed with it

    # -- setting up -------------------------------------------------------------------------------

    @classmethod
    def controller_clone(
        cls,
        url: str,
        workdir: str | Path,
        branch: str = "main",
        *,
        fetch: bool = True,
        status_branch: str | None = None,
    ) -> GitRepo:
        """A bare clone the controller owns; reused when it exists (same remote).

        Credentials come only from files or environment variables (_credentials.py).
        `fetch=False` leaves the first fetch to the first pass (the long-running loop retries it with
        backoff instead of dying at start). Lock files a killed git left behind more than
        STALE_LOCK_S ago are removed: only the controller writes this clone.
        """
        refuse_inline_password(url)
        workdir = Path(workdir)
        if not (workdir / "HEAD").exists():
            workdir.mkdir(parents=True, exist_ok=True)
            git.Repo.init(workdir, bare=True)
            git.Repo(workdir).git.remote("add", "origin", url)
        else:
            _remove_stale_locks(workdir)
        repo = cls(workdir, branch=branch)
        repo.status_branch = status_branch
        current = repo.git.remote("get-url", "origin")
        if current != url:
            raise UsageError(
                f"{workdir}: already a clone of {redact(current)}, not {redact(url)}; use another --workdir"
            )
        configure_credentials(repo.git, os.environ)
        if fetch:
            repo.fetch()
        return repo

    def close(self) -> None:
        self.repo.close()

    # -- reading ----------------------------------------------------------------------------------

    def fetch(self) -> str:
        """Fetch the branch into its tracking ref; returns the remote head."""
        try:
            self.git.fetch("--quiet", "--no-tags", "origin", f"+refs/heads/{self.branch}:{self.tracking}")
        except GitCommandError as exc:
            raise GitError(f"fetch from origin failed: {stderr_of(exc)}") from exc
        self.fetch_trail()  # with --status-branch: the trail beside it
        return self.rev(self.tracking)

    def remote_head(self) -> str:
        """The remote branch's sha without fetching anything (`git ls-remote`)."""
        try:
            out = self.git.ls_remote("origin", f"refs/heads/{self.branch}")
        except GitCommandError as exc:
            raise GitError(f"ls-remote origin failed: {stderr_of(exc)}") from exc
        return str(out).split("\t", 1)[0] if out else ""

    def local_head(self) -> str:
        """The tracking ref read in-process (no subprocess)."""
        try:
            return str(self.repo.refs[f"origin/{self.branch}"].commit.hexsha)
        except (IndexError, ValueError):
            return ""

    def rev(self, rev: str) -> str:
        try:
            return str(self.git.rev_parse("--verify", "--quiet", f"{rev}^{{commit}}"))
        except GitCommandError as exc:
            raise UsageError(f"{rev!r} is not a commit in {self.path}") from exc

    def ls_tree(self, rev: str, roots: Sequence[str] = (ENV_ROOT, STATUS_ROOT)) -> dict[str, str]:
        """path -> blob sha of every regular file under `roots` at `rev` (no symlinks, no submodules)."""
        out = self.git.ls_tree("-r", "-z", "--full-tree", rev, "--", *[r.rstrip("/") for r in roots])
        files: dict[str, str] = {}
        for entry in str(out).split("\0"):
            if not entry:
                continue
            meta, _, path = entry.partition("\t")
            mode, _kind, sha = meta.split(" ")
            if mode in REGULAR:
                files[path] = sha
        return files

    def tree(self, rev: str, roots: Sequence[str] = (ENV_ROOT, STATUS_ROOT)) -> Tree:
        """Every entry under `roots` at `rev` with its mode and size: one `git ls-tree -r -l`.

        Sizes let a reader refuse a file over a limit before reading a byte of it; symlinks and
        submodules are listed apart, so nothing ever reads through one.
        """
        out = self.git.ls_tree("-r", "-z", "-l", "--full-tree", rev, "--", *[r.rstrip("/") for r in roots])
        listing = Tree()
        for entry in str(out).split("\0"):
            if not entry:
                continue
            meta, _, path = entry.partition("\t")
            mode, _kind, sha, size = meta.split()
            if mode in REGULAR:
                listing.files[path] = sha
                listing.sizes[sha] = int(size)
            else:
                listing.special[path] = mode
        return listing

    def read_blob(self, sha: str) -> bytes:
        data: bytes = self.repo.odb.stream(bytes.fromhex(sha)).read()
        return data

    def read_blob_within(self, sha: str, limit: int) -> bytes | TooLarge:
        """A blob, or TooLarge when it is bigger than `limit` bytes (then none of it is read)."""
        size = int(self.repo.odb.info(bytes.fromhex(sha)).size)
        return TooLarge(size) if size > limit else self.read_blob(sha)

    def read_blobs(self, shas: Sequence[str]) -> dict[str, bytes | TooLarge]:
        return dict(self.iter_blobs(shas))

    def iter_blobs(
        self, shas: Sequence[str], *, pipelined: bool = False, limit: int | None = None
    ) -> Iterator[tuple[str, bytes | TooLarge]]:
        """Many blobs at once, as they arrive: one pipelined `git cat-file --batch`.

        The object database's persistent cat-file answers one request at a time; for the
        thousands of blobs of a start-up scan, pipelining them is several times faster, and a
        caller that parses each blob as it arrives overlaps its work with git's. A blob over
        `limit` bytes streams past unkept (memory stays bounded) and comes back as TooLarge.
        """
        if not shas:
            return
        if len(shas) < PIPELINE_FROM and not pipelined:  # (a forked child must not share the odb's pipes)
            for sha in shas:
                yield sha, self.read_blob(sha) if limit is None else self.read_blob_within(sha, limit)
            return
        proc = subprocess.Popen(
            ["git", "cat-file", "--batch"], cwd=self.repo.git_dir, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert proc.stdin is not None and proc.stdout is not None
        stdin, stdout = proc.stdin, proc.stdout

        def feed() -> None:
            try:
                with stdin:
                    stdin.write(("\n".join(shas) + "\n").encode())
            except OSError:  # cat-file was stopped early
                pass

        writer = threading.Thread(target=feed, daemon=True)
        writer.start()
        done = False
        buffer, at = b"", 0  # parsed out of big reads: a readline and two reads per blob cost more than git
        try:
            for sha in shas:
                newline = buffer.find(b"\n", at)
                while newline < 0:
                    buffer, at = buffer[at:] + _more(stdout, sha), 0
                    newline = buffer.find(b"\n")
                header = buffer[at:newline].split()
                if len(header) != 3:
                    raise GitError(f"cat-file --batch: {b' '.join(header).decode(errors='replace')} for {sha}")
                start = newline + 1
                end = start + int(header[2])
                if limit is not None and int(header[2]) > limit:
                    while len(buffer) < end + 1:  # let it stream past without keeping it
                        end -= len(buffer)
                        buffer = _more(stdout, sha)
                    yield sha, TooLarge(int(header[2]))
                    at = end + 1
                    continue
                while len(buffer) < end + 1:  # the object and the newline after it
                    buffer += _more(stdout, sha)
                yield sha, buffer[start:end]
                at = end + 1
            done = True
        finally:
            if not done:  # the caller stopped early or a read failed: do not wait on a blocked pipe
                proc.kill()
            writer.join()
            stdout.close()
            proc.wait()

    def read_file(self, rev: str, path: str) -> bytes | None:
        files = self.ls_tree(rev, (path,))
        return self.read_blob(files[path]) if path in files else None

    def commit_message(self, sha: str) -> tuple[str, str]:
        """(author email, full message) of a commit, read from the object database."""
        record = self.commit_record(sha)
        return record.author_email, record.message

    def commit_record(self, sha: str, changes: Sequence[FileChange] = ()) -> CommitRecord:
        """A commit's header read in-process from the object database (no subprocess)."""
        raw = self.read_commit_object(sha)
        header, _, message = raw.partition("\n\n")
        parents: list[str] = []
        email, when = "", datetime.fromtimestamp(0, UTC)
        for line in header.splitlines():
            if line.startswith("parent "):
                parents.append(line[7:].strip())
            elif line.startswith("author "):
                email = line.split("<", 1)[-1].split(">", 1)[0]
            elif line.startswith("committer "):
                stamp, zone = line.rsplit(" ", 2)[-2:]
                offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5])) * (-1 if zone[0] == "-" else 1)
                when = datetime.fromtimestamp(int(stamp), timezone(offset))
        return CommitRecord(sha, tuple(parents), email, when, message, tuple(changes))

    def verify_commit(self, sha: str, allowed_signers: bytes) -> bool:
        """`git verify-commit` against an ssh allowed-signers file (the repo's environments/allowed_signers)."""
        with tempfile.TemporaryDirectory(prefix="releasectl-signers-") as tmp:
            path = os.path.join(tmp, "allowed_signers")
            with open(path, "wb") as handle:
                handle.write(allowed_signers)
            try:
                self.git.execute(
                    ["git", "-c", "gpg.format=ssh", "-c", f"gpg.ssh.allowedSignersFile={path}", "verify-commit", sha]
                )
            except GitCommandError:
                return False
        return True

    def read_commit_object(self, sha: str) -> str:
        return bytes(self.repo.odb.stream(bytes.fromhex(sha)).read()).decode("utf-8", "replace")

    def commit_time(self, sha: str) -> datetime | None:
        """The committer time of a commit in the controller's clone (None when it is not there)."""
        try:
            text = self.read_commit_object(sha)
        except Exception:
            return None
        for line in text.split("\n\n", 1)[0].splitlines():
            if line.startswith("committer "):
                stamp = line.rsplit(" ", 2)[-2]
                return datetime.fromtimestamp(int(stamp), UTC) if stamp.isdigit() else None
        return None

    def log(
        self, rev: str, paths: Sequence[str] = (ENV_ROOT, STATUS_ROOT), since: str | None = None, **options: Any
    ) -> list[CommitRecord]:
        """First-parent commits in since..rev that touch `paths`, with their changed files.

        ONE `git log --raw -z` for the whole range: never a subprocess per commit. `options` are
        log_async's (reverse, first_parent, max_count).
        """
        return self.log_async(rev, paths, since, **options).result()

    def log_async(
        self,
        rev: str,
        paths: Sequence[str] = (ENV_ROOT, STATUS_ROOT),
        since: str | None = None,
        *,
        reverse: bool = True,
        first_parent: bool = True,
        max_count: int | None = None,
    ) -> LogCall:
        """`log`, started now; `.result()` waits for it (it runs beside the caller's work)."""
        args = ["--no-renames", "--raw", "-z", "--no-abbrev", "--format=%x01%H%x00%P%x00%ae%x00%cI%x00%B%x00"]
        if first_parent:
            args[:0] = ["--first-parent", "--diff-merges=first-parent"]
        if reverse:
            args.append("--reverse")
        if max_count is not None:
            args.append(f"--max-count={max_count}")
        args += [f"{since}..{rev}" if since else rev, "--", *[p.rstrip("/") for p in paths]]
        return LogCall(self.repo.git_dir, args)

    def stream_log(
        self, rev: str, since: str | None, paths: Sequence[str] = (ENV_ROOT, STATUS_ROOT)
    ) -> Iterator[CommitRecord]:
        """Like `log` without messages, newest first, yielded while git still walks."""
        return stream_log(self.repo.git_dir, rev, since, paths)

    def tree_diff(self, old: str, new: str, roots: Sequence[str]) -> TreeDiff:
        """What changed under `roots` between two commits, computed beside other work."""
        return TreeDiff(self.repo.git_dir, old, new, roots)

    def blob_feed(self, limit: int | None = None) -> BlobFeed:
        """A cat-file that takes requests while other work goes on (see _stream.BlobFeed)."""
        return BlobFeed(self.repo.git_dir, limit)

    def last_changes(self, rev: str, paths: Iterable[str]) -> dict[str, str]:
        """path -> the first-parent commit that last changed it at `rev` (one walk for all paths)."""
        wanted = set(paths)
        found: dict[str, str] = {}
        if not wanted:
            return found
        for record in self.log(rev, sorted({p.rsplit("/", 1)[0] + "/" for p in wanted}), reverse=False):
            for change in record.changes:
                if change.path in wanted and change.path not in found:
                    found[change.path] = record.sha
            if len(found) == len(wanted):
                break
        return found

    def changed_paths(self, base: str, rev: str) -> list[str]:
        out = self.git.diff("--name-only", "-z", "--no-renames", base, rev, "--", ENV_ROOT.rstrip("/"))
        return [p for p in str(out).split("\0") if p]


STALE_LOCK_S = 30.0


def _remove_stale_locks(gitdir: Path) -> None:
    """`*.lock` files under the clone's refs (and packed-refs, FETCH_HEAD) older than STALE_LOCK_S."""
    now = time.time()
    candidates = [gitdir / "packed-refs.lock", gitdir / "FETCH_HEAD.lock", gitdir / "shallow.lock"]
    candidates += list((gitdir / "refs").rglob("*.lock")) if (gitdir / "refs").is_dir() else []
    for path in candidates:
        try:
            if now - path.stat().st_mtime > STALE_LOCK_S:
                path.unlink()
        except OSError:
            continue

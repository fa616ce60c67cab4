"""The git adapter: the only module that uses gitpython.

Place in the flow: the first and the last step of a pass. It fetches the release repo, reads
files from a commit's tree (never a working tree), lists what changed in a range of first-parent
commits with ONE `git log --raw -z` per range, and writes status commits with plumbing (a
temporary index, `commit-tree`) and pushes them; a rejected push is fetched, replayed on the new
head and retried with backoff. It never force-pushes and never writes under environments/.
Blobs and commits are read through gitpython's long-lived `cat-file --batch` object database.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import git
from git.exc import GitCommandError, InvalidGitRepositoryError, NoSuchPathError
from gitdb.base import IStream

from controller.errors import GitError, PushRejected, UsageError
from controller.history import CommitRecord, FileChange
from controller.pins import ENV_ROOT, STATUS_ROOT
from controller.planner import CommitInfo
from controller.trail import all_trailers

ZERO = "0" * 40
TRACKING = "refs/remotes/origin/{branch}"
_REJECTED = ("[rejected]", "non-fast-forward", "fetch first", "failed to update ref", "stale info")


@dataclass(frozen=True)
class Identity:
    name: str
    email: str

    @classmethod
    def parse(cls, text: str) -> Identity:
        name, _, rest = text.partition("<")
        if not rest.endswith(">") or "@" not in rest:
            raise UsageError(f"identity {text!r} must look like 'Name <email>'")
        return cls(name.strip(), rest[:-1].strip())

    def env(self) -> dict[str, str]:
        return {
            "GIT_AUTHOR_NAME": self.name,
            "GIT_AUTHOR_EMAIL": self.email,
            "GIT_COMMITTER_NAME": self.name,
            "GIT_COMMITTER_EMAIL": self.email,
        }


CONTROLLER = Identity("releasectl", "releasectl@noreply.invalid")


@dataclass(frozen=True)
class PendingCommit:
    """One status commit to write: files under status/ and its message."""

    files: tuple[tuple[str, bytes], ...]
    message: str


class GitRepo:
    """A repository, opened once and kept: its object database keeps `cat-file --batch` warm."""

    def __init__(self, path: str | Path, *, branch: str = "main") -> None:
        try:
            self.repo = git.Repo(path)
        except (InvalidGitRepositoryError, NoSuchPathError) as exc:
            raise UsageError(f"{path}: not a git repository") from exc
        self.path = Path(path)
        self.branch = branch
        self.git: Any = self.repo.git

    # -- setting up -------------------------------------------------------------------------------

    @classmethod
    def controller_clone(cls, url: str, workdir: str | Path, branch: str = "main") -> GitRepo:
        """A bare clone the controller owns; reused when it exists (same remote)."""
        workdir = Path(workdir)
        if not (workdir / "HEAD").exists():
            workdir.mkdir(parents=True, exist_ok=True)
            git.Repo.init(workdir, bare=True)
            git.Repo(workdir).git.remote("add", "origin", url)
        repo = cls(workdir, branch=branch)
        current = repo.git.remote("get-url", "origin")
        if current != url:
            raise UsageError(f"{workdir}: already a clone of {current}, not {url}; use another --workdir")
        repo.fetch()
        return repo

    def close(self) -> None:
        self.repo.close()

    # -- reading ----------------------------------------------------------------------------------

    @property
    def tracking(self) -> str:
        return TRACKING.format(branch=self.branch)

    def fetch(self) -> str:
        """Fetch the branch into its tracking ref; returns the remote head."""
        try:
            self.git.fetch("--quiet", "--no-tags", "origin", f"+refs/heads/{self.branch}:{self.tracking}")
        except GitCommandError as exc:
            raise GitError(f"fetch from origin failed: {_stderr(exc)}") from exc
        return self.rev(self.tracking)

    def remote_head(self) -> str:
        """The remote branch's sha without fetching anything (`git ls-remote`)."""
        try:
            out = self.git.ls_remote("origin", f"refs/heads/{self.branch}")
        except GitCommandError as exc:
            raise GitError(f"ls-remote origin failed: {_stderr(exc)}") from exc
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
        """path -> blob sha of every file under `roots` at `rev`."""
        out = self.git.ls_tree("-r", "-z", "--full-tree", rev, "--", *[r.rstrip("/") for r in roots])
        files: dict[str, str] = {}
        for entry in str(out).split("\0"):
            if not entry:
                continue
            meta, _, path = entry.partition("\t")
            _mode, kind, sha = meta.split(" ")
            if kind == "blob":
                files[path] = sha
        return files

    def read_blob(self, sha: str) -> bytes:
        data: bytes = self.repo.odb.stream(bytes.fromhex(sha)).read()
        return data

    def read_file(self, rev: str, path: str) -> bytes | None:
        files = self.ls_tree(rev, (path,))
        return self.read_blob(files[path]) if path in files else None

    def commit_message(self, sha: str) -> tuple[str, str]:
        """(author email, full message) of a commit, read from the object database."""
        raw = self.read_commit_object(sha)
        header, _, body = raw.partition("\n\n")
        author = ""
        for line in header.splitlines():
            if line.startswith("author "):
                author = line[len("author ") :].split("<", 1)[-1].split(">", 1)[0]
                break
        return author, body

    def commit_info(self, sha: str, allowed_signers: bytes | None = None) -> CommitInfo:
        """Author, `Approved-by:` trailers and (given allowed signers) signature of a commit that set a pin."""
        author, body = self.commit_message(sha)
        verified = self.verify_commit(sha, allowed_signers) if allowed_signers else False
        return CommitInfo(
            sha=sha,
            author_email=author,
            approvers=tuple(all_trailers(body, "Approved-by")),
            signature_verified=verified,
        )

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

    def log(
        self,
        rev: str,
        paths: Sequence[str] = (ENV_ROOT, STATUS_ROOT),
        since: str | None = None,
        *,
        reverse: bool = True,
        first_parent: bool = True,
        max_count: int | None = None,
    ) -> list[CommitRecord]:
        """First-parent commits in since..rev that touch `paths`, with their changed files.

        ONE `git log --raw -z` for the whole range: never a subprocess per commit.
        """
        args = [
            "--no-renames",
            "--raw",
            "-z",
            "--no-abbrev",
            "--format=%x01%H%x00%P%x00%ae%x00%cI%x00%B%x00",
        ]
        if first_parent:
            args[:0] = ["--first-parent", "--diff-merges=first-parent"]
        if reverse:
            args.append("--reverse")
        if max_count is not None:
            args.append(f"--max-count={max_count}")
        args.append(f"{since}..{rev}" if since else rev)
        try:
            out = self.git.log(*args, "--", *[p.rstrip("/") for p in paths])
        except GitCommandError as exc:
            raise GitError(f"git log {rev} failed: {_stderr(exc)}") from exc
        return list(_parse_log(str(out)))

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

    def is_ancestor(self, ancestor: str, rev: str) -> bool:
        try:
            self.git.merge_base("--is-ancestor", ancestor, rev)
            return True
        except GitCommandError:
            return False

    # -- writing ----------------------------------------------------------------------------------

    def store_blob(self, data: bytes) -> str:
        return str(self.repo.odb.store(IStream("blob", len(data), BytesIO(data))).hexsha.decode())

    def write_commits(self, parent: str, commits: Sequence[PendingCommit], identity: Identity) -> str:
        """Chain `commits` on `parent` with plumbing and a temporary index; returns the last sha."""
        for pending in commits:
            for path, _ in pending.files:
                if path.startswith(ENV_ROOT) or not path.startswith(STATUS_ROOT):
                    raise ValueError(f"the controller writes only under {STATUS_ROOT}, not {path}")
        head = parent
        with tempfile.TemporaryDirectory(prefix="releasectl-index-") as tmp:
            env = {"GIT_INDEX_FILE": os.path.join(tmp, "index"), **identity.env()}
            self.git.read_tree(head, env=env)
            for pending in commits:
                for path, data in pending.files:
                    blob = self.store_blob(data)
                    self.git.update_index("--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
                tree = self.git.write_tree(env=env)
                head = self.git.commit_tree(tree, "-p", head, "-F", _message_file(tmp, pending.message), env=env)
        return str(head)

    def push(self, sha: str) -> None:
        """Fast-forward the remote branch to `sha`; a refusal is PushRejected. Never forced."""
        try:
            self.git.push("--porcelain", "origin", f"{sha}:refs/heads/{self.branch}")
        except GitCommandError as exc:
            text = _stderr(exc) + str(exc.stdout or "")
            if any(marker in text for marker in _REJECTED):
                raise PushRejected(f"push to origin/{self.branch} was rejected (someone pushed meanwhile)") from exc
            raise GitError(f"push to origin failed: {_stderr(exc)}") from exc
        self.git.update_ref(self.tracking, sha)

    def publish(
        self,
        base: str,
        commits: Sequence[PendingCommit],
        identity: Identity = CONTROLLER,
        *,
        attempts: int = 6,
        backoff_s: float = 0.05,
        on_retry: Any = None,
    ) -> str:
        """Write `commits` on `base` and push; on rejection fetch, replay on the new head, retry."""
        if not commits:
            return base
        parent = base
        for attempt in range(1, attempts + 1):
            head = self.write_commits(parent, commits, identity)
            try:
                self.push(head)
                return head
            except PushRejected:
                if attempt == attempts:
                    raise
                if on_retry is not None:
                    on_retry(attempt)
                time.sleep(backoff_s * 2 ** (attempt - 1) * (1 + random.random()))  # noqa: S311 - jitter
                parent = self.fetch()
        raise AssertionError("unreachable")

    # -- what users do (CLI rollback / promote, the demo) -----------------------------------------

    def commit_on(
        self,
        ref: str,
        parent: str,
        files: dict[str, bytes | None],
        message: str,
        identity: Identity | None = None,
    ) -> str:
        """A commit on `ref` (created or fast-forwarded) that writes or deletes `files`."""
        with tempfile.TemporaryDirectory(prefix="releasectl-index-") as tmp:
            env = {"GIT_INDEX_FILE": os.path.join(tmp, "index"), **(identity.env() if identity else {})}
            self.git.read_tree(parent, env=env)
            for path, data in files.items():
                if data is None:
                    self.git.update_index("--force-remove", path, env=env)
                else:
                    blob = self.store_blob(data)
                    self.git.update_index("--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
            tree = self.git.write_tree(env=env)
            sha = str(self.git.commit_tree(tree, "-p", parent, "-F", _message_file(tmp, message), env=env))
        self.git.update_ref(ref, sha)
        return sha

    # -- a working clone (rollback) ----------------------------------------------------------------

    @property
    def is_bare(self) -> bool:
        return bool(self.repo.bare)

    def dirty(self) -> bool:
        return bool(self.repo.is_dirty(untracked_files=False))

    def current_branch(self) -> str:
        return str(self.git.rev_parse("--abbrev-ref", "HEAD"))

    def ref_exists(self, ref: str) -> bool:
        try:
            self.git.rev_parse("--verify", "--quiet", ref)
            return True
        except GitCommandError:
            return False

    def all_changes(self, sha: str) -> list[str]:
        """Every path a commit changed against its first parent (not only under environments/)."""
        out = self.git.diff_tree(
            "--no-commit-id", "-r", "-z", "--name-only", "--no-renames", "-m", "--first-parent", "--root", sha
        )
        return [p for p in str(out).split("\0") if p]

    def revert(self, sha: str, mainline: int | None = None) -> str:
        args = ["--no-edit"] + (["-m", str(mainline)] if mainline else []) + [sha]
        try:
            self.git.revert(*args)
        except GitCommandError as exc:
            raise GitError(f"git revert {sha[:12]} failed: {_stderr(exc)}") from exc
        return self.rev("HEAD")

    def restore_and_commit(self, path: str, rev: str, message: str) -> str:
        """Check `path` out as it was at `rev` and commit only that file (a path-limited revert)."""
        self.git.checkout(rev, "--", path)
        self.git.commit("-m", message, "--", path)
        return self.rev("HEAD")


def _message_file(folder: str, message: str) -> str:
    path = os.path.join(folder, "message")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(message)
    return path


def _stderr(exc: GitCommandError) -> str:
    text = str(exc.stderr or exc).strip()
    return " ".join(line.strip() for line in text.splitlines() if line.strip()).removeprefix("stderr: ").strip("'")


def _parse_log(out: str) -> Iterator[CommitRecord]:
    for record in out.split("\x01"):
        if not record:
            continue
        sha, parents, email, date, rest = record.split("\0", 4)
        message, _, raw = rest.partition("\0")
        tokens = raw.split("\0")
        changes = []
        i = 0
        while i < len(tokens):
            meta = tokens[i].lstrip("\n")
            if meta.startswith(":") and i + 1 < len(tokens):
                _om, _nm, old, new, status = meta[1:].split(" ")
                changes.append(
                    FileChange(tokens[i + 1], None if old == ZERO else old, None if new == ZERO else new, status[0])
                )
                i += 2
            else:
                i += 1
        yield CommitRecord(
            sha=sha,
            parents=tuple(parents.split()),
            author_email=email,
            committed_at=datetime.fromisoformat(date),
            message=message,
            changes=tuple(changes),
        )

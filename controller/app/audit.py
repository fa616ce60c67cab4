"""`releasectl audit`: read a release repo's history for the audit, from git alone.

Place in the flow: the library behind the `audit` command. It reads, with the git adapter, the
first-parent commits that touched pins or statuses (their changed files, ssh signature verdicts
against environments/allowed_signers at the head, the authors of merged changes), the policy and
allowed signers in force at each of them, and every approval commit with where it joined the
first-parent line; controller/core/audit.py folds that into the report and its breaks.
"""

from __future__ import annotations

from datetime import UTC, datetime

from controller.adapters.git import CONTROLLER, GitRepo
from controller.app.queries import interleave
from controller.core.audit import AuditInput, AuditReport, PinChange, SignedCommit, StatusChange, TrailCommit, fold
from controller.core.history import CommitRecord
from controller.core.models import PromotionPolicy
from controller.core.paths import ALLOWED_SIGNERS, ENV_ROOT, POLICY_PATH, STATUS_ROOT, split_pin_path, split_status_path
from controller.core.pins import parse_pin, parse_policy
from controller.core.trail import parse_status
from controller.core.yamlio import MAX_DOCUMENT_BYTES
from controller.errors import UsageError
from controller.loop.approvals import approvals_in


def parse_date(text: str | None, option: str) -> datetime | None:
    """`2026-11-30` or an ISO time; naive times are UTC."""
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise UsageError(f"{option} {text!r}: not a date (YYYY-MM-DD or an ISO 8601 time)") from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def names_principal(signers: bytes | None, email: str) -> bool:
    """Whether an allowed-signers file lists `email` as a principal of some key."""
    for raw in (signers or b"").decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            principals = line.split()[0].split(",")
            if email.lower() in (p.strip().strip('"').lower() for p in principals):
                return True
    return False


def gather(repo: GitRepo, rev: str = "HEAD", controller: str = CONTROLLER.email) -> AuditInput:
    head = repo.rev(rev)
    policy_now = parse_policy(repo.read_file(head, POLICY_PATH))
    if isinstance(policy_now, list):
        raise UsageError("; ".join(p.line() for p in policy_now))
    signers = repo.read_file(head, ALLOWED_SIGNERS)
    trail = repo.trail_head()
    records = repo.log(head, (ENV_ROOT, STATUS_ROOT))
    verdicts = {c.sha: c for c in repo.signed_log([head], signers, first_parent=True, paths=(ENV_ROOT, STATUS_ROOT))}
    if trail is not None:  # --status-branch: outcomes from the trail, in time order with the pin changes
        records = interleave(repo, head, records, repo.log(trail, (STATUS_ROOT,)))
        verdicts.update({c.sha: c for c in repo.signed_log([trail], signers, first_parent=True)})
    wanted = sorted(
        {b for r in records for ch in r.changes for b in (ch.new_blob, ch.old_blob) if b and _wanted(ch.path)}
    )
    # a document over the size limit is not read: it then reads as no pin or status at all
    blobs = {sha: data for sha, data in repo.iter_blobs(wanted, limit=MAX_DOCUMENT_BYTES) if isinstance(data, bytes)}
    position, joined, authors_of = repo.first_parent_graph(head)
    brought: dict[int, set[str]] = {}
    for sha, at in joined.items():
        brought.setdefault(at, set()).add(authors_of.get(sha, ""))
    policy: PromotionPolicy | None = None
    controller_signs = False
    commits: list[TrailCommit] = []
    for record in records:
        for change in record.changes:
            if change.path == POLICY_PATH and change.new_blob:
                parsed = parse_policy(blobs.get(change.new_blob))
                policy = parsed if isinstance(parsed, PromotionPolicy) else policy
            elif change.path == ALLOWED_SIGNERS:
                controller_signs = names_principal(blobs.get(change.new_blob or ""), controller)
        pins, statuses = _changes(record, blobs)
        if not pins and not statuses:
            continue
        commit = verdicts.get(record.sha) or _unverified(record)
        authors = tuple(sorted(brought.get(position.get(record.sha, -1), set()) - {""})) or (record.author_email,)
        commits.append(TrailCommit(commit, pins, statuses, authors, policy, controller_signs))
    found = repo.signed_log([head], signers, grep="^Releasectl-Approves: ")
    approvals = approvals_in(found)
    return AuditInput(
        head=head,
        order=tuple(policy_now.order),
        commits=tuple(commits),
        approvals=approvals,
        approval_position={a.commit: joined[a.commit] for a in approvals if a.commit in joined},
        position=position,
        controller=controller,
    )


def audit(
    repo: GitRepo,
    rev: str = "HEAD",
    *,
    environment: str | None = None,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    verify: bool = False,
    controller: str = CONTROLLER.email,
) -> AuditReport:
    data = gather(repo, rev, controller)
    if environment is not None and environment not in data.order:
        raise UsageError(f"unknown environment {environment!r} (environments: {', '.join(data.order)})")
    return fold(data, environment=environment, model=model, since=since, until=until, verify=verify)


def _wanted(path: str) -> bool:
    return (
        path in (POLICY_PATH, ALLOWED_SIGNERS)
        or split_pin_path(path) is not None
        or (split_status_path(path) is not None)
    )


def _changes(record: CommitRecord, blobs: dict[str, bytes]) -> tuple[tuple[PinChange, ...], tuple[StatusChange, ...]]:
    pins: list[PinChange] = []
    statuses: list[StatusChange] = []
    for change in record.changes:
        pin_key = split_pin_path(change.path)
        status_key = split_status_path(change.path)
        if pin_key is not None:
            blob = change.old_blob if change.status == "D" else change.new_blob
            parsed = parse_pin(change.path, blobs.get(blob or "", b""), pin_key[1])
            version = "unknown" if isinstance(parsed, list) else parsed.version
            digest = None if isinstance(parsed, list) else parsed.spec_digest()
            kind = (
                "delete" if change.status == "D" else ("revert" if record.subject.startswith('Revert "') else "change")
            )
            pins.append(PinChange(pin_key[0], pin_key[1], kind, version, digest))
        elif status_key is not None:
            data = blobs.get(change.new_blob or "") if change.status != "D" else None
            statuses.append(StatusChange(status_key[0], status_key[1], parse_status(data) if data else None))
    return tuple(pins), tuple(statuses)


def _unverified(record: CommitRecord) -> SignedCommit:
    return SignedCommit(
        sha=record.sha,
        parents=record.parents,
        author_email=record.author_email,
        author_name="",
        committer_email=record.author_email,
        committed_at=record.committed_at,
        message=record.message,
    )

"""The git adapter: the only package that uses gitpython (see repo.py)."""

from controller.gitrepo._common import CONTROLLER, ZERO, Identity, PendingCommit
from controller.gitrepo._stream import BlobFeed, TreeDiff
from controller.gitrepo.repo import GitRepo

__all__ = ["CONTROLLER", "ZERO", "BlobFeed", "GitRepo", "Identity", "PendingCommit", "TreeDiff"]

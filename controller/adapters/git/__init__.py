"""The git adapter: the only package that uses gitpython (see repo.py)."""

from controller.adapters.git._common import CONTROLLER, Identity, PendingCommit
from controller.adapters.git._stream import BlobFeed, TreeDiff
from controller.adapters.git._trail import EMPTY_TREE
from controller.adapters.git.repo import GitRepo, Tree

__all__ = ["CONTROLLER", "EMPTY_TREE", "BlobFeed", "GitRepo", "Identity", "PendingCommit", "Tree", "TreeDiff"]

"""A forked child's answer comes back; its failure comes back as ChildFailed with the traceback."""

from __future__ import annotations

import os

import pytest

from controller.loop.forking import ChildFailed, Forked


def test_the_child_computes_in_another_process() -> None:
    parent = os.getpid()
    child = Forked(lambda: (os.getpid(), {"docs": [1, 2.5, "x", None]}))
    pid, value = child.result()
    assert pid != parent and value == {"docs": [1, 2.5, "x", None]}


def test_a_failing_child_raises_child_failed_with_its_traceback() -> None:
    def boom() -> None:
        raise ValueError("not YAML at all")

    with pytest.raises(ChildFailed, match=r"(?s)Traceback.*ValueError: not YAML at all"):
        Forked(boom).result()


def test_a_child_that_dies_says_so() -> None:
    with pytest.raises(ChildFailed, match="died without an answer"):
        Forked(lambda: os._exit(9)).result()

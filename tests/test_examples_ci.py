"""The example GitHub Actions workflow (examples/github-actions/releasectl-pr.yml) is valid and runs real commands.

Place in the flow: documentation that must not rot. The file parses as YAML, has what GitHub
needs (`on`, `jobs`, each job's `runs-on` and `steps`, each step a `uses` or a `run`), checks out
the whole history (fetch-depth 0: the merge-base with the base branch needs it), and every
`releasectl ...` command it runs parses with our own command line's parser.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.app.cli import parser

WORKFLOW = Path(__file__).resolve().parent.parent / "examples/github-actions/releasectl-pr.yml"


def _doc() -> dict[Any, Any]:
    doc = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(doc, dict)
    return doc


def _commands() -> list[list[str]]:
    found = []
    for job in _doc()["jobs"].values():
        for step in job["steps"]:
            for raw in str(step.get("run", "")).splitlines():
                line = re.sub(r"\$\{\{\s*github\.base_ref\s*\}\}", "main", raw.split(" #", 1)[0]).strip()
                if line.startswith("releasectl "):
                    found.append(shlex.split(line)[1:])
    return found


def test_the_workflow_has_what_github_needs() -> None:
    doc = _doc()
    triggers = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` key as true; GitHub reads "on"
    assert isinstance(triggers, dict) and "pull_request" in triggers
    assert isinstance(doc["name"], str) and doc["name"]
    assert doc["jobs"]
    for job in doc["jobs"].values():
        assert isinstance(job["runs-on"], str)
        assert job["steps"]
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), step
    steps = [s for job in doc["jobs"].values() for s in job["steps"]]
    checkout = next(s for s in steps if str(s.get("uses", "")).startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0


def test_it_runs_validate_and_the_smoke_check_against_the_prs_base() -> None:
    assert _commands() == [
        ["validate", "--rev", "HEAD", "--base", "origin/main"],
        ["check", "--smoke", "--base", "origin/main"],
    ]


@pytest.mark.parametrize("argv", _commands(), ids=lambda a: a[0])
def test_every_command_parses_with_our_parser(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    assert isinstance(args, argparse.Namespace)
    assert args.command == argv[0]
    if argv[0] == "check":
        assert args.smoke is True and args.base == "origin/main"

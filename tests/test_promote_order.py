"""`releasectl promote` follows policy.order: only to the environment right after the source."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.app.cli import main
from tests.support import make_release_repo


@pytest.mark.parametrize(
    ("source", "target", "code", "message"),
    [
        ("dev", "staging", 0, ""),
        ("staging", "production", 0, ""),
        (
            "dev",
            "production",
            1,
            "error: cannot promote from dev to production: production does not follow dev in policy.order "
            "(dev -> staging -> production)\n",
        ),
        (
            "production",
            "dev",
            1,
            "error: cannot promote from production to dev: dev does not follow production in policy.order "
            "(dev -> staging -> production)\n",
        ),
        ("dev", "qa", 2, "error: unknown environment 'qa' (policy.order: dev -> staging -> production)\n"),
    ],
    ids=["next-in-order", "last-step", "skipping-staging", "backwards", "unknown-target"],
)
def test_promote_follows_the_policy_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], source: str, target: str, code: int, message: str
) -> None:
    user = make_release_repo(tmp_path).clone("user")
    before = user.run("for-each-ref", "--format=%(refname)")
    model = "wine-classifier" if source == "staging" else "tumor-classifier"
    assert main(["promote", model, "--from", source, "--to", target, "--repo", str(user.path)]) == code
    err = capsys.readouterr().err
    if code:
        assert err == message
        assert user.run("for-each-ref", "--format=%(refname)") == before  # no branch was made
    else:
        assert "push the new branch and open a PR" in err

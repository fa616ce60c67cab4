"""`releasectl reconcile --executor argo`: its flags, the token's sources, TLS, against the Argo double.

The CLI runs in-process against a real release repo (a bare file:// remote) and the loopback Argo
Server double with scripted pods; TLS uses a self-signed certificate made with the openssl CLI.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.adapters.argo import ArgoExecutor, ArgoTLSError, Connection, TokenSource
from controller.app.argo_wiring import IMAGE_RE
from controller.app.cli import main
from controller.errors import UsageError
from tests.argo.conftest import NAMESPACE, compiled
from tests.argo.contract import Swagger
from tests.argo.double import TOKEN, ArgoDouble
from tests.argo.engine import runner
from tests.argo.pods import ScriptedPods
from tests.support import git, make_release_repo


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is not installed: no certificate for the TLS tests")
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_double(contract: Swagger, certificate: tuple[Path, Path]) -> Iterator[ArgoDouble]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*map(str, certificate))
    server = ArgoDouble(contract, keepalive_s=0.2, tls=context)
    server.runner = runner(ScriptedPods())
    server.start()
    yield server
    server.close()
    assert server.violations == [], "\n".join(server.violations)


def _executor(url: str, **kwargs: object) -> ArgoExecutor:
    lines: list[str] = []
    connection = Connection(url, NAMESPACE, TokenSource("ARGO_TOKEN", value=TOKEN), request_timeout_s=5, **kwargs)  # type: ignore[arg-type]
    executor = ArgoExecutor(connection, poll_interval_s=0.2, read_timeout_s=5, log=lines.append)
    executor.lines = lines  # type: ignore[attr-defined]
    return executor


def test_tls_is_verified_by_default(tmp_path: Path, tls_double: ArgoDouble) -> None:
    with _executor(tls_double.url) as executor, pytest.raises(ArgoTLSError) as caught:
        executor.submit(compiled(tmp_path))
    message = str(caught.value)
    assert message.startswith(f"the certificate of the Argo Server at {tls_double.url}/ did not verify (")
    assert message.endswith("give its CA with --argo-ca-file") and "CERTIFICATE_VERIFY_FAILED" in message
    assert tls_double.workflows == {}


def test_tls_with_the_ca_file_submits_and_streams(
    tmp_path: Path, tls_double: ArgoDouble, certificate: tuple[Path, Path]
) -> None:
    with _executor(tls_double.url, ca_file=str(certificate[0])) as executor:
        name = executor.submit(compiled(tmp_path))
        assert executor.wait_for_finished([name], 20)
        assert executor.finished([name])[name].phase == "Succeeded"
        assert executor.watcher.connects == 1 and executor.lines == []  # type: ignore[attr-defined]


def test_insecure_skip_verify_works_and_says_so_loudly(tmp_path: Path, tls_double: ArgoDouble) -> None:
    with _executor(tls_double.url, insecure=True) as executor:
        assert executor.lines == [  # type: ignore[attr-defined]
            f"WARNING: --argo-insecure-skip-verify: the certificate of {tls_double.url}/ is NOT verified; anyone on "
            "the network path can read the Argo token and forge the server's answers"
        ]
        name = executor.submit(compiled(tmp_path))
        assert executor.wait_for_finished([name], 20)


def test_token_file_is_read_and_reread_when_it_changes(tmp_path: Path, double: ArgoDouble) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\n")
    source = TokenSource.from_env_or_file(str(token_file), environ={"ARGO_TOKEN": "ignored"})
    assert source.description == f"--argo-token-file {token_file}"
    assert source.header() == f"Bearer {TOKEN}"
    with ArgoExecutor(Connection(double.url, NAMESPACE, source), poll_interval_s=0.2) as executor:
        first = executor.submit(compiled(tmp_path))
        double.token = "rotated-token-2"  # Kubernetes rotated the projected token
        token_file.write_text("Bearer rotated-token-2\n")
        second = executor.submit(compiled(tmp_path, None) | {})  # the same manifest: a 409 and an attach
        assert first == second
    assert [r.status for r in double.requests if r.method == "POST"] == [200, 409]


@pytest.mark.parametrize(
    ("environ", "file_text", "description"),
    [
        ({"ARGO_TOKEN": " tok-1 "}, None, "ARGO_TOKEN"),
        ({}, None, "no token (neither ARGO_TOKEN nor --argo-token-file was given)"),
    ],
    ids=["env", "none"],
)
def test_token_sources(environ: dict[str, str], file_text: str | None, description: str) -> None:
    source = TokenSource.from_env_or_file(None, environ=environ)
    assert source.description == description
    assert source.header() == ("Bearer tok-1" if environ else None)


@pytest.mark.parametrize(
    ("text", "error"),
    [(None, "cannot read the Argo token file: No such file or directory"), ("  \n", "the Argo token file is empty")],
    ids=["missing", "empty"],
)
def test_a_bad_token_file_is_a_usage_error_naming_it(tmp_path: Path, text: str | None, error: str) -> None:
    path = tmp_path / "token"
    if text is not None:
        path.write_text(text)
    with pytest.raises(UsageError) as caught:
        TokenSource.from_env_or_file(str(path))
    assert str(caught.value) == f"{path}: {error}"


@pytest.mark.parametrize(
    ("server", "extra", "error"),
    [
        ("argo.example.com:2746", {}, "--argo-server 'argo.example.com:2746': must be an http:// or https:// URL"),
        ("https://argo.example.com/?x=1", {}, "must not have a query or fragment"),
        (
            "https://argo.example.com",
            {"ca_file": "/nonexistent/ca.pem"},
            "--argo-ca-file /nonexistent/ca.pem: no such file",
        ),
    ],
    ids=["no-scheme", "query", "missing-ca"],
)
def test_connection_settings_are_checked(server: str, extra: dict[str, str], error: str) -> None:
    with pytest.raises(UsageError, match=error.replace("?", r"\?")):
        Connection(server, NAMESPACE, TokenSource("no token"), **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("image", "ok"),
    [
        ("ghcr.io/releasectl/steps:0.1.0", True),
        ("registry.local:5000/ml/steps@sha256:" + "a" * 64, True),
        ("steps", True),
        ("ghcr.io/releasectl/steps:0.1.0; rm -rf /", False),
        ("Steps:latest", False),
        ("ghcr.io/x/y:$(id)", False),
    ],
    ids=["tag", "registry-port-digest", "bare", "shell", "uppercase-path", "substitution"],
)
def test_image_references(image: str, ok: bool) -> None:
    assert bool(IMAGE_RE.match(image)) is ok


def test_cli_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["reconcile", "--repo", "file:///nonexistent", "--home", str(tmp_path), "--executor", "argo"]
    assert main(base) == 2
    assert capsys.readouterr().err.strip() == "error: --executor argo needs --argo-server URL"
    assert main([*base, "--argo-server", "https://argo.example.com", "--namespace", "Bad_NS"]) == 2
    assert "--namespace 'Bad_NS': must be a DNS label" in capsys.readouterr().err


def test_cli_reconcile_on_argo_records_every_outcome(
    tmp_path: Path, double: ArgoDouble, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_release_repo(tmp_path)
    double.check_answers = False  # requests and workflows are still checked; answers are in test_argo_contract
    monkeypatch.setenv("ARGO_TOKEN", TOKEN)
    code = main(
        ["reconcile", "--repo", repo.url, "--once", "--home", str(tmp_path / "home"), "--executor", "argo",
         "--argo-server", double.url, "--namespace", NAMESPACE, "--image", "registry.local:5000/ml/steps:9.9"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    phases = git(repo.remote, "log", "--format=%(trailers:key=Releasectl-Phase,valueonly)", "main").split()
    assert sorted(set(phases)) == ["Deployed"] and len(phases) == 9
    executors = git(repo.remote, "show", "main:status/production/tumor-classifier.yaml")
    assert '"executor": "argo"' in executors
    created = [r.body["workflow"] for r in double.requests if r.method == "POST"]
    assert len(created) == len(double.workflows) == 9
    images = {t["script"]["image"] for w in created for t in w["spec"]["templates"] if "script" in t}
    assert images == {"registry.local:5000/ml/steps:9.9"}
    assert {w["metadata"]["namespace"] for w in created} == {NAMESPACE}
    assert double.count("GET", f"/api/v1/workflow-events/{NAMESPACE}") == 1


def test_cli_insecure_skip_verify_warns_on_stderr_at_start(
    tmp_path: Path, tls_double: ArgoDouble, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_release_repo(tmp_path)
    tls_double.check_answers = False  # requests and workflows are still checked; answers are in test_argo_contract
    monkeypatch.setenv("ARGO_TOKEN", TOKEN)
    code = main(
        ["reconcile", "--repo", repo.url, "--once", "--home", str(tmp_path / "home"), "--executor", "argo",
         "--argo-server", tls_double.url, "--namespace", NAMESPACE, "--argo-insecure-skip-verify"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    assert err.splitlines()[0] == (
        f"WARNING: --argo-insecure-skip-verify: the certificate of {tls_double.url}/ is NOT verified; anyone on "
        "the network path can read the Argo token and forge the server's answers"
    )
    assert len(tls_double.workflows) == 9


def test_the_token_never_shows_in_a_repr_or_an_error(tmp_path: Path, double: ArgoDouble) -> None:
    source = TokenSource.from_env_or_file(None, environ={"ARGO_TOKEN": "s3cr3t-token-value"})
    connection = Connection(double.url, NAMESPACE, source)
    assert "s3cr3t" not in repr(source) and "s3cr3t" not in repr(connection)
    with ArgoExecutor(connection) as executor, pytest.raises(Exception) as caught:
        executor.submit(compiled(tmp_path))
    assert "s3cr3t" not in str(caught.value) and "ARGO_TOKEN" in str(caught.value)

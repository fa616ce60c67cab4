"""How the ArgoExecutor reaches the Argo Server: the URL, the token and its source, TLS, errors.

Place in the flow: built once by controller/app/argo_wiring.py from the command line, used by the
executor for every request (Hera's WorkflowsService) and by the event stream (http.client). The
token comes from ARGO_TOKEN or a token file (re-read when the file changes, as Kubernetes rotates
projected service-account tokens) and is sent as `Authorization: Bearer <token>`. TLS is verified
against the system's CA bundle (certifi's, the one requests uses) or `ca_file`; `insecure`
switches verification off, and the executor says so loudly every time it starts.
"""

from __future__ import annotations

import os
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from controller.errors import PermanentError, TransientError, UsageError

_MAX_MESSAGE = 300


class ArgoUnavailable(TransientError):
    """The Argo Server cannot be reached or answered with a server error; retried later."""


class ArgoAuthError(PermanentError):
    """The Argo Server refused the token (401/403); one line naming where the token came from."""


class ArgoTLSError(PermanentError):
    """The Argo Server's certificate did not verify (or the CA file is unusable)."""


class ArgoRejected(PermanentError):
    """The Argo Server refused a request as invalid (400): the manifest or the request is wrong."""


def short(text: object) -> str:
    """One line, bounded: error messages from servers end up in status commits and logs."""
    line = " ".join(str(text).split())
    return line if len(line) <= _MAX_MESSAGE else line[: _MAX_MESSAGE - 1] + "…"


@dataclass
class TokenSource:
    """Where the bearer token comes from, and the token itself (a file is re-read when it changes)."""

    description: str  # "ARGO_TOKEN", "--argo-token-file PATH" or "no token"
    value: str | None = field(default=None, repr=False)  # a secret: never in a repr, a log or an error
    path: Path | None = None
    _stamp: tuple[int, int] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_env_or_file(cls, token_file: str | None, environ: dict[str, str] | None = None) -> TokenSource:
        env = os.environ if environ is None else environ
        if token_file:
            source = cls(f"--argo-token-file {token_file}", path=Path(token_file))
            source.current()  # a missing or empty file is a usage error at start, not at the first request
            return source
        token = env.get("ARGO_TOKEN", "").strip()
        if token:
            return cls("ARGO_TOKEN", value=token)
        return cls("no token (neither ARGO_TOKEN nor --argo-token-file was given)")

    def current(self) -> str | None:
        """The token now; a file source is re-read when its size or mtime changed."""
        if self.path is None:
            return self.value
        with self._lock:
            try:
                info = self.path.stat()
                stamp = (info.st_mtime_ns, info.st_size)
                if stamp != self._stamp:
                    text = self.path.read_text(encoding="utf-8").strip()
                    if not text:
                        raise UsageError(f"{self.path}: the Argo token file is empty")
                    self.value, self._stamp = text, stamp
            except OSError as exc:
                if self.value is None:
                    raise UsageError(f"{self.path}: cannot read the Argo token file: {exc.strerror}") from None
            return self.value

    def header(self) -> str | None:
        """The Authorization header value: `Bearer <token>` (a token that already names its scheme is kept)."""
        token = self.current()
        if not token:
            return None
        return token if len(token.split()) > 1 else f"Bearer {token}"


@dataclass(frozen=True)
class Connection:
    """The Argo Server's base URL (with a trailing slash), namespace, token and TLS settings."""

    server: str
    namespace: str
    token: TokenSource
    ca_file: str | None = None
    insecure: bool = False
    request_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.server)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"--argo-server {self.server!r}: must be an http:// or https:// URL")
        if parts.query or parts.fragment:
            raise UsageError(f"--argo-server {self.server!r}: must not have a query or fragment")
        if self.ca_file and not Path(self.ca_file).is_file():
            raise UsageError(f"--argo-ca-file {self.ca_file}: no such file")
        if self.ca_file and self.insecure:
            raise UsageError("--argo-ca-file and --argo-insecure-skip-verify contradict each other: give one")
        if not self.server.endswith("/"):
            object.__setattr__(self, "server", self.server + "/")  # urljoin keeps a base path only so

    @property
    def tls(self) -> bool:
        return urlsplit(self.server).scheme == "https"

    @property
    def verify(self) -> bool | str:
        """What requests' `verify` takes: a CA bundle path, True (its default bundle) or False."""
        if self.insecure:
            return False
        return self.ca_file or True

    def ssl_context(self) -> ssl.SSLContext:
        """The same trust for the event stream as requests applies to the other calls."""
        if self.insecure:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        if self.ca_file:
            return ssl.create_default_context(cafile=self.ca_file)
        import certifi

        return ssl.create_default_context(cafile=certifi.where())

    def warnings(self) -> list[str]:
        """What the executor prints every time it starts: settings that weaken security."""
        found = []
        if self.insecure and self.tls:
            found.append(
                f"WARNING: --argo-insecure-skip-verify: the certificate of {self.server} is NOT verified; anyone "
                "on the network path can read the Argo token and forge the server's answers"
            )
        host = urlsplit(self.server).hostname or ""
        if not self.tls and host not in ("127.0.0.1", "localhost", "::1"):
            found.append(f"WARNING: {self.server} is plain http: the Argo token and every workflow travel unencrypted")
        return found

    def refused(self, status: int, what: str, detail: str = "") -> ArgoAuthError:
        reason = "401 Unauthorized" if status == 401 else "403 Forbidden"
        more = f": {short(detail)}" if detail else ""
        return ArgoAuthError(
            f"the Argo Server at {self.server} refused the token from {self.token.description} "
            f"({reason}) while {what}{more}"
        )

    def unreachable(self, what: str, detail: object) -> ArgoUnavailable:
        return ArgoUnavailable(f"the Argo Server at {self.server} is unavailable while {what}: {short(detail)}")

    def untrusted(self, detail: object) -> ArgoTLSError:
        return ArgoTLSError(
            f"the certificate of the Argo Server at {self.server} did not verify ({short(detail)}); "
            "give its CA with --argo-ca-file"
        )

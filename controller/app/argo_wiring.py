"""Wiring for `releasectl reconcile --executor argo`: its flags, the ArgoExecutor and the compiler.

Place in the flow: built once by the CLI before the first pass, like runtime.py for one machine.
The flags:

  --argo-server URL             the Argo Server (https://argo.example.com:2746, a base path is kept)
  --namespace NS                where workflows run (and what the compiled manifests say)
  --argo-token-file PATH        the bearer token (else $ARGO_TOKEN; the file is re-read when it changes)
  --argo-ca-file PATH           the CA bundle that signed the server's certificate
  --argo-insecure-skip-verify   no TLS verification at all; a WARNING line at every start
  --image IMAGE                 the steps image the compiled workflows name
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from controller.errors import UsageError

if TYPE_CHECKING:  # the CLI imports this module for every command: keep it light
    from controller.core.models import Action

# A container image reference: [registry[:port]/]path[:tag][@sha256:digest], as the OCI distribution spec spells it.
IMAGE_RE = re.compile(
    r"^(?:[A-Za-z0-9][A-Za-z0-9.-]*(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)

EXAMPLE = (
    "releasectl reconcile --repo https://git.example.com/ml/releases.git --interval 60 \\\n"
    "    --executor argo --argo-server https://argo.example.com:2746 --namespace releasectl \\\n"
    "    --argo-token-file /var/run/secrets/argo/token --argo-ca-file /etc/releasectl/argo-ca.pem"
)


def add_argo_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `--executor argo` on the reconcile command."""
    group = parser.add_argument_group(
        "Argo Workflows (--executor argo)",
        "run the compiled workflows on an Argo Server;\nthe token comes from $ARGO_TOKEN or --argo-token-file",
    )
    parser.formatter_class = argparse.RawDescriptionHelpFormatter  # keeps the example's lines
    parser.epilog = "\n\n".join(filter(None, [parser.epilog, f"example, on a cluster:\n  {EXAMPLE}"]))
    group.add_argument("--argo-server", metavar="URL", help="the Argo Server's URL (http:// or https://)")
    group.add_argument("--namespace", metavar="NS", help="the namespace workflows run in")
    group.add_argument("--argo-token-file", metavar="PATH", help="a file holding the bearer token (else $ARGO_TOKEN)")
    group.add_argument("--argo-ca-file", metavar="PATH", help="the CA bundle that verifies the server's certificate")
    group.add_argument(
        "--argo-insecure-skip-verify",
        action="store_true",
        help="DANGEROUS: do not verify the Argo Server's TLS certificate (a warning is printed at every start)",
    )
    group.add_argument(
        "--image", metavar="IMAGE", help="the steps image of the compiled workflows (default: the tag of this version)"
    )


def _checked(args: argparse.Namespace) -> tuple[str, str]:
    from controller.core.models import DNS_LABEL_RE

    if not args.argo_server:
        raise UsageError("--executor argo needs --argo-server URL")
    if not args.namespace:
        raise UsageError("--executor argo needs --namespace NS")
    if not DNS_LABEL_RE.match(args.namespace):
        raise UsageError(f"--namespace {args.namespace!r}: must be a DNS label (lowercase letters, digits, '-')")
    if args.image is not None and not IMAGE_RE.match(args.image):
        raise UsageError(f"--image {args.image!r}: not a container image reference (registry/path:tag[@sha256:...])")
    return str(args.argo_server), str(args.namespace)


def argo_executor(args: argparse.Namespace, log: Callable[[str], None]) -> Any:
    """The ArgoExecutor the flags describe (a context manager); its warnings go to `log` at once."""
    from controller.adapters.argo import ArgoExecutor, Connection, TokenSource

    server, namespace = _checked(args)
    connection = Connection(
        server,
        namespace,
        TokenSource.from_env_or_file(args.argo_token_file),
        ca_file=args.argo_ca_file,
        insecure=bool(args.argo_insecure_skip_verify),
    )
    return ArgoExecutor(connection, log=log)


def argo_compiler(home: Any, args: argparse.Namespace) -> Callable[[Action], dict[str, Any]]:
    """Compile actions for the cluster: the namespace and steps image of the flags."""
    from workflows.builders import manifest

    _, namespace = _checked(args)
    base = home.target()
    target = dataclasses.replace(base, namespace=namespace, image=args.image or base.image)

    def compile_action(action: Action) -> dict[str, Any]:
        return manifest(action, target)

    return compile_action

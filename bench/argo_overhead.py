"""What the ArgoExecutor costs against an Argo Server, next to bare HTTP requests in the same run.

Place in the flow: a benchmark of step 4 (the executor) on a cluster, outside the controller. Run:

    python -m bench.argo_overhead [--workflows N] [--json PATH]

Against the loopback Argo Server double of tests/argo (its contract checks off, and every workflow
taken to Succeeded by one status update, so the server's own cost is small and the same for both
sides), it measures:

- executor: N compiled workflows (the real deploy-with-training manifest) submitted with
  ArgoExecutor.submit and tracked to completion with wait_for_finished/finished, which read the
  cache ONE workflow-events stream keeps;
- bare: the same N create requests as raw http.client POSTs on one keep-alive connection, and one
  raw http.client read of the same event stream until all N have Succeeded (no parsing beyond
  finding each event's name and phase): the floor of talking to the server at all.

Each side first runs one workflow untimed (imports, pydantic's first model builds). It prints both,
their ratio and the requests the server saw from the executor (N creates, one
list, one stream: never a GET per workflow), and with --json writes one row.
"""

from __future__ import annotations

import argparse
import copy
import http.client
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from controller.adapters.argo import ArgoExecutor, Connection, TokenSource
from tests.argo.conftest import NAMESPACE, action, compiled
from tests.argo.double import TOKEN, ArgoDouble, now
from tests.argo.engine import node_id


def finish_at_once(double: ArgoDouble, ns: str, name: str) -> None:
    """The double's controller at its cheapest: one update takes a created workflow to Succeeded, with a
    Succeeded Pod node (and a verdict output) per DAG task, so the server costs little next to the client."""
    workflow = double.get(ns, name)
    entry = next(t for t in workflow["spec"]["templates"] if t["name"] == workflow["spec"]["entrypoint"])
    at = now()
    nodes = {node_id(name, name): {"id": node_id(name, name), "name": name, "displayName": name, "type": "DAG",
                                   "phase": "Succeeded", "startedAt": at, "finishedAt": at}}  # fmt: skip
    for task in entry["dag"]["tasks"]:
        full = f"{name}.{task['name']}"
        nodes[node_id(name, full)] = {
            "id": node_id(name, full), "name": full, "displayName": task["name"], "type": "Pod",
            "templateName": task["template"], "phase": "Succeeded", "startedAt": at, "finishedAt": at,
            "outputs": {"exitCode": "0", "parameters": [{"name": "verdict", "value": '{"verdict": "Succeeded"}'}]},
        }  # fmt: skip

    def succeed(w: dict[str, Any]) -> None:
        w["status"] = {"phase": "Succeeded", "startedAt": at, "finishedAt": at, "nodes": nodes}

    double.update(ns, name, succeed)


def _manifests(root: Path, count: int, tag: str) -> list[dict[str, Any]]:
    """N copies of the real compiled manifest, each with its own name and source commit."""
    base = compiled(root, action())
    made = []
    for i in range(count):
        manifest = copy.deepcopy(base)
        manifest["metadata"]["name"] = f"rc-bench-{tag}-{i:05d}"
        manifest["metadata"]["annotations"]["releasectl.dev/source-commit"] = f"{tag}{i:039x}"
        made.append(manifest)
    return made


def _executor_run(double: ArgoDouble, manifests: list[dict[str, Any]]) -> float:
    connection = Connection(double.url, NAMESPACE, TokenSource("ARGO_TOKEN", value=TOKEN))
    t0 = time.perf_counter()
    with ArgoExecutor(connection, poll_interval_s=1.0) as executor:
        names = [executor.submit(m) for m in manifests]
        pending = set(names)
        while pending:
            if not executor.wait_for_finished(pending, 120):
                raise SystemExit(f"{len(pending)} workflows did not finish within 120 s")
            done = executor.finished(pending)
            bad = [f"{n}: {r.phase}" for n, r in done.items() if r.phase != "Succeeded"]
            if bad:
                raise SystemExit(f"workflows did not succeed: {bad[:3]}")
            pending -= set(done)
    return time.perf_counter() - t0


def _bare_run(double: ArgoDouble, manifests: list[dict[str, Any]]) -> float:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    query = urlencode({"listOptions.labelSelector": "releasectl.dev/managed-by=releasectl"})
    names = {m["metadata"]["name"] for m in manifests}
    t0 = time.perf_counter()
    stream = http.client.HTTPConnection("127.0.0.1", double.port, timeout=120)
    stream.request(
        "GET", f"/api/v1/workflow-events/{NAMESPACE}?{query}", headers={**headers, "Accept": "text/event-stream"}
    )
    events = stream.getresponse()
    conn = http.client.HTTPConnection("127.0.0.1", double.port, timeout=30)
    for manifest in manifests:
        conn.request("POST", f"/api/v1/workflows/{NAMESPACE}", json.dumps({"workflow": manifest}), headers)
        answer = conn.getresponse()
        answer.read()
        if answer.status != 200:
            raise SystemExit(f"bare create answered {answer.status}")
    pending = set(names)
    while pending:
        line = events.readline()
        if not line:
            raise SystemExit("the bare event stream ended early")
        if line.startswith(b"data: "):
            obj = json.loads(line[6:])["result"]["object"]
            if (obj.get("status") or {}).get("phase") == "Succeeded":
                pending.discard(obj["metadata"]["name"])
    wall = time.perf_counter() - t0
    conn.close()
    stream.close()
    return wall


def measure(count: int, root: Path) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for side in ("bare", "executor"):  # each against a fresh server, so neither inherits the other's workflows
        double = ArgoDouble(None, keepalive_s=5.0)
        double.runner = finish_at_once
        double.start()
        try:
            run = _bare_run if side == "bare" else _executor_run
            run(double, _manifests(root, 1, "w" + side[0]))  # warm-up, untimed: imports, pydantic's first builds
            double.requests.clear()
            double.history.clear()
            rows[side] = run(double, _manifests(root, count, side[0]))
            if side == "executor":
                rows["requests"] = {
                    "creates": double.count("POST", f"/api/v1/workflows/{NAMESPACE}"),
                    "lists": sum(
                        1
                        for r in double.requests
                        if r.method == "GET" and r.path.endswith(NAMESPACE) and r.path.startswith("/api/v1/workflows/")
                    ),
                    "gets": double.count("GET", f"/api/v1/workflows/{NAMESPACE}/"),
                    "streams": double.count("GET", f"/api/v1/workflow-events/{NAMESPACE}"),
                    "events": len(double.history),
                }
        finally:
            double.close()
    return {
        "operation": f"argo executor: submit {count} workflows and track them to completion over one event stream",
        "workflows": count,
        "executor_s": round(rows["executor"], 4),
        "bare_s": round(rows["bare"], 4),
        "ratio": round(rows["executor"] / rows["bare"], 2),
        "per_workflow_ms": round(rows["executor"] / count * 1000, 2),
        "requests": rows["requests"],
    }


def main(argv: list[str] | None = None) -> int:
    import tempfile

    parser = argparse.ArgumentParser(prog="python -m bench.argo_overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=100)
    parser.add_argument("--json", type=Path)
    opts = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="argo-bench-") as tmp:
        row = measure(opts.workflows, Path(tmp))
    print(json.dumps(row, indent=1))
    if opts.json is not None:
        opts.json.write_text(json.dumps([row], indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

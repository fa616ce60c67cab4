"""A real S3 API on loopback for tests: moto's server mode (`moto_server`) as a child process.

It enforces credentials (INITIAL_NO_AUTH_ACTION_COUNT): the first four requests set up an IAM user
with an S3 policy, its access key, and the buckets; every request after them must be signed with
that key, so wrong credentials are refused as AWS refuses them (InvalidAccessKeyId,
SignatureDoesNotMatch). Nothing here is mocked in-process: boto3 talks HTTP to 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUCKETS = ("artifacts", "datasets")
SETUP_REQUESTS = 3 + len(BUCKETS)  # create user, create key, put policy, one create-bucket per bucket


@dataclass(frozen=True)
class S3Server:
    url: str
    access_key: str
    secret_key: str

    def env(self, **overrides: str) -> dict[str, str]:
        """The standard AWS variables a step (or a pod, from its Secret) gets."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_REGION": "eu-west-1",
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            **overrides,
        }

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="eu-west-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def moto_server() -> Iterator[S3Server]:
    import boto3

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    binary = Path(sys.executable).with_name("moto_server")
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(SETUP_REQUESTS)}
    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        env.pop(key, None)
    proc = subprocess.Popen(
        [str(binary), "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start on {url}") from None
                time.sleep(0.05)
        boot = {
            "endpoint_url": url,
            "region_name": "eu-west-1",
            "aws_access_key_id": "bootstrap",
            "aws_secret_access_key": "bootstrap",
        }
        iam = boto3.client("iam", **boot)
        iam.create_user(UserName="releasectl")
        key = iam.create_access_key(UserName="releasectl")["AccessKey"]
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        iam.put_user_policy(UserName="releasectl", PolicyName="s3", PolicyDocument=json.dumps(policy))
        s3 = boto3.client("s3", **boot)
        for bucket in BUCKETS:
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        yield S3Server(url=url, access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

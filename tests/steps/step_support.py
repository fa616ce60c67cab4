"""Types shared by the step tests and their fixtures (conftest.py): where steps read and write."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SPEC = "sha256:" + "ab" * 32

# trained(dataset="breast-cancer", recipe="logistic-regression", version="1.0.0", **params) -> artifact
Trainer = Callable[..., str]


@dataclass(frozen=True)
class Place:
    """Where the steps read and write: folders and their file:// URIs."""

    data: Path
    store: Path
    serving: Path

    @property
    def data_uri(self) -> str:
        return self.data.as_uri()

    @property
    def store_uri(self) -> str:
        return self.store.as_uri()

    @property
    def serving_uri(self) -> str:
        return self.serving.as_uri()

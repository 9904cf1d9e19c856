"""Model registry in the models bucket: `<name>/<version>/{model.keras,model.tflite,metadata.json}` and
`<name>/LATEST`, which only promotion moves."""

from __future__ import annotations

import json

from fraud.core.settings import Settings
from fraud.core.storage import ObjectStore, object_store

ARTIFACTS = ("model.keras", "model.tflite", "metadata.json")


def publish(store: ObjectStore, name: str, version: str, files: dict[str, bytes]) -> list[str]:
    missing = set(ARTIFACTS) - set(files)
    if missing:
        raise ValueError(f"model {name}/{version} lacks {sorted(missing)}")
    keys = []
    for filename in ARTIFACTS:  # metadata last: its presence means the version is complete
        key = f"{name}/{version}/{filename}"
        store.put_bytes(key, files[filename])
        keys.append(key)
    return keys


def promote(store: ObjectStore, name: str, version: str) -> None:
    if not store.exists(f"{name}/{version}/metadata.json"):
        raise KeyError(f"cannot promote {name}/{version}: no such complete version")
    store.put_bytes(f"{name}/LATEST", version.encode(), "text/plain")


def latest_version(store: ObjectStore, name: str) -> str | None:
    return store.get_bytes(f"{name}/LATEST").decode().strip() if store.exists(f"{name}/LATEST") else None


def load_metadata(store: ObjectStore, name: str, version: str) -> dict:
    return json.loads(store.get_bytes(f"{name}/{version}/metadata.json"))


def load_tflite(store: ObjectStore, name: str, version: str) -> bytes:
    return store.get_bytes(f"{name}/{version}/model.tflite")


def promoted_version(settings: Settings) -> str | None:
    """The version the settings' models bucket has promoted (its `LATEST`), or None."""
    return latest_version(object_store(settings, settings.models_bucket), settings.model_name)

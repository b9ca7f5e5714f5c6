"""manifest.json: what convert wrote and deploy reads, so that nothing is guessed from file names.

Layout (schema_version 1; docs/manifest.md describes every field):

    {"schema": "edgedigits.manifest", "schema_version": 1, "created": ..., "edgedigits_version": ...,
     "labels": ["0", ..., "9"],
     "preprocessing": {...the contract: 28x28, white on black, x = pixel / 255...},
     "source": {"file", "sha256", "model", "parameters", "card"},
     "check": {"data", "digits", "tolerance_pp", "keras_accuracy"},
     "artifacts": [{"format", "file", "precision", "runtime", "devices", "sha256", "size_bytes",
                    "inputs": [{"name", "shape", "dtype", "quantization": {"scale", "zero_point"} | null}],
                    "outputs": [...], "accuracy", "delta_pp", "agreement",
                    "status": "passed" | "check_failed" | "export_failed", "reason", "details"}]}

Standard library only: deploy imports this on devices.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from edgedigits.atomic import atomic_write
from edgedigits.contract import class_name
from edgedigits.errors import EdgeDigitsError

SCHEMA = "edgedigits.manifest"
SCHEMA_VERSION = 1
NAME = "manifest.json"
STATUSES = ("passed", "check_failed", "export_failed")
REQUIRED = {"schema": str, "schema_version": int, "labels": list, "preprocessing": dict,
            "source": dict, "artifacts": list}
ARTIFACT_REQUIRED = {"format": str, "status": str}
MAX_BYTES = 10 << 20  # a manifest is a few KiB (the Edge TPU report included)


class ManifestError(EdgeDigitsError):
    pass


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class Manifest:
    path: Path
    data: dict

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def artifacts(self) -> list[dict]:
        return self.data["artifacts"]

    def artifact(self, fmt: str) -> dict:
        for a in self.artifacts:
            if a["format"] == fmt:
                return a
        have = ", ".join(a["format"] for a in self.artifacts) or "none"
        raise ManifestError(f"{self.path}: has no '{fmt}' artifact (it has: {have}); "
                            f"convert again with --formats {fmt}")

    def file(self, entry: dict) -> Path:
        if not entry.get("file"):
            raise ManifestError(f"{self.path}: the '{entry['format']}' artifact has no file "
                                f"({entry['status']}: {entry.get('reason', '')})")
        return inside(self.folder, entry["file"], self.path)


def plain_name(name, where: str) -> str:
    """A file name with no folder part: what every `file` of a manifest must be."""
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name \
            or "\0" in name or Path(name).is_absolute() or Path(name).drive:
        raise ManifestError(f"{where}: 'file' is {name!r}; expected a plain file name in the manifest's folder")
    return name


def inside(folder: Path, name: str, where) -> Path:
    """folder/name, refused when a symbolic link takes it out of the folder."""
    path = folder / plain_name(name, str(where))
    if path.is_symlink() and path.resolve().parent != folder.resolve():
        raise ManifestError(f"{path}: a link to {path.resolve()}, outside the manifest's folder; refused")
    return path


def write_manifest(folder: Path, data: dict) -> Path:
    """Write atomically; every file an entry names must exist, so a manifest never points at nothing.
    The one writer of manifest.json: it adds the schema, the time of writing and edgedigits' version."""
    import time

    from edgedigits import __version__

    data = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "edgedigits_version": __version__, **data}
    for a in data["artifacts"]:
        if a.get("file") and not (folder / a["file"]).is_file():
            raise ManifestError(f"{folder / a['file']}: missing; refusing to write a manifest that names it")
    validate(data, folder / NAME)
    return atomic_write(folder / NAME, lambda tmp: tmp.write_text(json.dumps(data, indent=1) + "\n"))


def validate(data: dict, where: Path | str) -> None:
    def fail(msg: str):
        raise ManifestError(f"{where}: {msg}")

    if not isinstance(data, dict):
        fail("not a JSON object")
    if data.get("schema") != SCHEMA:
        fail(f"'schema' is {data.get('schema')!r}, expected {SCHEMA!r}: not an edgedigits manifest")
    for key, typ in REQUIRED.items():
        if key not in data:
            fail(f"missing '{key}'")
        if not isinstance(data[key], typ):
            fail(f"'{key}' should be a {typ.__name__}, got {type(data[key]).__name__}")
    if data["schema_version"] > SCHEMA_VERSION:
        fail(f"schema_version {data['schema_version']} is newer than this edgedigits understands "
             f"({SCHEMA_VERSION}); upgrade edgedigits")
    if len(data["labels"]) != 10:
        fail(f"'labels' has {len(data['labels'])} entries, expected 10")
    for i, label in enumerate(data["labels"]):
        if not isinstance(label, str) or not label.strip():
            fail(f"labels[{i}] is {label!r}; expected a class name (a non-empty string)")
    plain_name(data["source"].get("file"), f"{where}: source")
    if not isinstance(data["source"].get("model"), str):
        fail(f"source: 'model' is {data['source'].get('model')!r}, expected the model's name")
    for i, a in enumerate(data["artifacts"]):
        if not isinstance(a, dict):
            fail(f"artifacts[{i}] is a {type(a).__name__}, expected an object")
        for key, typ in ARTIFACT_REQUIRED.items():
            if not isinstance(a.get(key), typ):
                fail(f"artifacts[{i}]: missing or invalid '{key}'")
        if a["status"] not in STATUSES:
            fail(f"artifacts[{i}] ({a['format']}): status {a['status']!r}, expected one of {STATUSES}")
        if a["status"] != "export_failed":
            for key in ("file", "sha256", "inputs", "outputs"):
                if not a.get(key):
                    fail(f"artifacts[{i}] ({a['format']}): missing '{key}'")
            plain_name(a["file"], f"{where}: artifacts[{i}] ({a['format']})")
            if not isinstance(a["sha256"], str):
                fail(f"artifacts[{i}] ({a['format']}): 'sha256' should be a str, got {type(a['sha256']).__name__}")
            for key in ("inputs", "outputs"):
                if not isinstance(a[key], list) or not all(isinstance(t, dict) for t in a[key]):
                    fail(f"artifacts[{i}] ({a['format']}): '{key}' should be a list of objects")
        if not isinstance(a.get("details", {}), (dict, type(None))):
            fail(f"artifacts[{i}] ({a['format']}): 'details' should be an object")
        elif a.get("file") is not None:
            plain_name(a["file"], f"{where}: artifacts[{i}] ({a['format']})")


# keys older manifests wrote under other names: old -> new, in an artifact's `details`
RENAMED_DETAILS = {"ops_on_edgetpu": "estimated_ops_on_edgetpu", "ops_on_cpu": "estimated_ops_on_cpu"}


def _upgrade(data: dict) -> dict:
    """An older manifest read as a current one: manifests written before the Edge TPU report's op counts
    were labelled an estimate stored them under the compiler's names (whose figures are in details.compiler)."""
    for a in data["artifacts"]:
        details = a.get("details") or {}
        for old, new in RENAMED_DETAILS.items():
            if old in details and new not in details:
                details[new] = details.pop(old)
    return data


def load_manifest(path: str | os.PathLike, verify_files: bool = True) -> Manifest:
    """Read and validate a manifest (a file, or the folder holding manifest.json)."""
    path = Path(path)
    if path.is_dir():
        path = path / NAME
    if not path.is_file():
        raise ManifestError(f"{path}: no manifest here; create one with `edgedigits convert MODEL --out DIR`")
    if path.stat().st_size > MAX_BYTES:
        raise ManifestError(f"{path}: {path.stat().st_size:,} bytes, larger than a manifest can be ({MAX_BYTES:,})")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ManifestError(f"{path}: not valid JSON ({e})") from None
    except RecursionError:
        raise ManifestError(f"{path}: JSON nested too deeply to be a manifest") from None
    except OSError as e:
        raise ManifestError(f"{path}: cannot read: {e.strerror or e}") from None
    validate(data, path)
    # class names as every stage compares them (NFC, no BOM): a manifest written by hand or by an older
    # version may hold 'café' twice, composed and not, or a BOM the web app would show
    labels = [class_name(label) for label in data["labels"]]
    for i, label in enumerate(labels):
        if not label or labels.index(label) != i:
            why = f"the same class name as labels[{labels.index(label)}]" if label else "empty once normalized"
            raise ManifestError(f"{path}: labels[{i}] is {data['labels'][i]!r}, {why}; expected 10 different "
                                f"class names")
    data["labels"] = labels
    m = Manifest(path, _upgrade(data))
    if verify_files:
        for a in m.artifacts:
            if not a.get("file"):
                continue
            f = m.file(a)
            if not f.is_file():
                raise ManifestError(f"{path}: artifact '{a['format']}' names {a['file']}, which does not exist")
            if sha256_file(f) != a["sha256"]:
                raise ManifestError(f"{f}: SHA-256 differs from the manifest's; the file was changed "
                                    f"after conversion (convert again)")
    return m

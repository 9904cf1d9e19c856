"""A dist/ as `make package` leaves it, in miniature: tiny files in place of the real zips, with manifests written
by the packager's own Manifest class (so the program's reader is tested against what the packager writes),
built in milliseconds instead of a packaging run."""

from __future__ import annotations

import zipfile
from pathlib import Path

from fraud.app.packaging import FUNCTIONS, GLUE_LIBRARY, GLUE_SCRIPT_ARTIFACT, LAMBDA, FunctionBuild, Manifest


def _tiny_zip(path: Path, entries: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in entries.items():
            archive.writestr(name, text)
    return path


def write_fake_dist(folder: Path, needs_newer_glibc: dict[str, str] | None = None) -> Path:
    """Every artifact the stack uploads, each a few bytes, with its manifest; `needs_newer_glibc` marks the scorer
    as failing the glibc audit. Returns `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, spec in FUNCTIONS.items():
        handler = f"lambdas/{name}/handler.py"
        zip_path = _tiny_zip(
            folder / f"{spec.artifact}.zip", {handler: "def handler(event, context):\n    return {}\n"}
        )
        too_new = (needs_newer_glibc or {}) if name == "scorer" else {}
        build = FunctionBuild.of(
            spec, LAMBDA, unzipped_bytes=64, files=1, distributions={}, glibc_required="2.27", needs_newer_glibc=too_new
        )
        Manifest.of_file(spec.artifact, "lambda", zip_path, "fake", {}, function=build).write()
    library = _tiny_zip(folder / f"{GLUE_LIBRARY}.zip", {"fraud/__init__.py": '"""fake"""\n'})
    Manifest.of_file(GLUE_LIBRARY, "glue-library", library, "fake", {}).write()
    script = folder / "process_transactions.py"
    script.write_text("print('the Glue job')\n")
    Manifest.of_file(GLUE_SCRIPT_ARTIFACT, "glue-script", script, "fake", {}).write()
    return folder

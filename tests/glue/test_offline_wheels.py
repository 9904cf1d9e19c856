"""No internet at run time: the Glue job's third-party distributions ship as the `glue-wheels` set (cp311,
manylinux x86_64, the pinned versions installed here, their dependencies resolved, without what Glue 5.0
provides), and that set installs with no package index: a throwaway virtualenv (Python 3.11, Glue 5.0's) gets
`pip install --no-index dist/glue-wheels/*.whl -r requirements.txt` and then imports the job's modules.
The wheels are real downloads, cached in dist/.cache/wheels/ like the Lambda builds'."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from fraud.app.packaging import DIST_DIR, GLUE, GLUE_WHEELS, build_glue_wheels
from fraud.app.packaging.audit import wheel_tag_problem
from fraud.app.packaging.wheels import wheel_metadata

# the third-party modules glue/process_transactions.py and the fraud/ modules it imports need beyond Glue's own
JOB_MODULES = ("pydantic_settings", "pydantic", "sqlalchemy", "psycopg", "psycopg_binary", "dagster_pipes")


@pytest.fixture(scope="module")
def glue_wheels():
    return build_glue_wheels(DIST_DIR)


def test_the_set_is_the_jobs_pinned_closure_for_glue_5_without_what_glue_provides(glue_wheels):
    folder = DIST_DIR / GLUE_WHEELS.name
    names = {canonicalize_name(wheel.name): wheel for wheel in glue_wheels.wheels}
    assert {"pydantic-settings", "sqlalchemy", "psycopg", "psycopg-binary", "dagster-pipes"} <= set(names)
    assert not set(names) & {canonicalize_name(p) for p in GLUE_WHEELS.provided}  # no second pyspark, pandas, ...
    from importlib import metadata

    for wheel in glue_wheels.wheels:
        path = DIST_DIR / wheel.path
        assert path.parent == folder and hashlib.sha256(path.read_bytes()).hexdigest() == wheel.sha256
        assert wheel.version == metadata.version(wheel.name)  # the pins installed here
        assert wheel_tag_problem(wheel_metadata(path), GLUE) is None  # cp311 (or pure), glibc <= 2.34, x86_64
        name, version, _, tags = parse_wheel_filename(path.name)
        assert canonicalize_name(name) == canonicalize_name(wheel.name) and str(version) == wheel.version
        assert all(t.interpreter in ("cp311", "py3") or t.abi == "abi3" for t in tags)
    assert sorted(p.name for p in folder.glob("*.whl")) == sorted(Path(w.path).name for w in glue_wheels.wheels)
    written = json.loads((DIST_DIR / "glue-wheels.manifest.json").read_text())
    assert written["kind"] == "glue-wheels" and len(written["wheels"]) == len(glue_wheels.wheels)
    # rebuilt only when the set changes: the same manifest, the wheels untouched
    mtimes = {p: p.stat().st_mtime_ns for p in folder.glob("*.whl")}
    assert build_glue_wheels(DIST_DIR) == glue_wheels
    assert {p: p.stat().st_mtime_ns for p in folder.glob("*.whl")} == mtimes


def test_the_set_installs_with_no_index_and_the_jobs_modules_import(glue_wheels, tmp_path):
    assert sys.version_info[:2] == GLUE.python  # the interpreter here is Glue 5.0's
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    folder = DIST_DIR / GLUE_WHEELS.name
    install = subprocess.run(
        [
            *(str(python), "-m", "pip", "install", "--no-index", *map(str, sorted(folder.glob("*.whl")))),
            *("-r", str(folder / "requirements.txt")),
            *("--disable-pip-version-check", "--no-input", "--progress-bar", "off", "--quiet"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    probe = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\nprint('ok')\n"
    imported = subprocess.run(
        [str(python), "-I", "-c", probe, *JOB_MODULES, "psycopg.pq"], capture_output=True, text=True, timeout=120
    )
    assert imported.returncode == 0 and imported.stdout.strip() == "ok", imported.stderr[-2000:]
    # psycopg finds its bundled libpq (the binary wheel), the only native piece the job's load needs
    libpq = subprocess.run(
        [str(python), "-I", "-c", "import psycopg; print(psycopg.pq.__impl__)"], capture_output=True, text=True
    )
    assert libpq.stdout.strip() == "binary", libpq.stderr[-2000:]


def test_every_wheel_is_a_wheel(glue_wheels):
    for wheel in glue_wheels.wheels:
        with zipfile.ZipFile(DIST_DIR / wheel.path) as archive:
            assert any(name.endswith(".dist-info/WHEEL") for name in archive.namelist())


def dependency_closure(root: str, installs: list[dict]) -> set[str]:
    """The distributions `root` needs, by pip's install report (each item's metadata and its Requires-Dist,
    markers evaluated here, extras followed): what a resolution from `root` alone would pick."""
    requires = {canonicalize_name(i["metadata"]["name"]): i["metadata"].get("requires_dist", []) for i in installs}
    needed: set[str] = set()
    pending = [(canonicalize_name(root), frozenset())]
    seen: set[tuple[str, frozenset]] = set()
    while pending:
        name, extras = pending.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        needed.add(name)
        for line in requires[name]:
            requirement = Requirement(line)
            wanted = {"", *extras}
            if requirement.marker and not any(requirement.marker.evaluate({"extra": e}) for e in wanted):
                continue
            pending.append((canonicalize_name(requirement.name), frozenset(requirement.extras)))
    return needed


def test_the_wheelhouse_resolves_the_project_with_no_index(tmp_path):
    """dist/wheelhouse/ (the container image's): the project's wheel and a wheel of every pinned runtime
    dependency, enough for pip to resolve `fraud-platform` with no index in a clean Python 3.11. Downloads about
    1 GiB of wheels on a cold cache (dist/.cache/wheels/), shared with the image build."""
    from importlib import metadata

    from fraud.app.packaging import WHEELHOUSE, build_wheelhouse

    manifest = build_wheelhouse(DIST_DIR)
    folder = DIST_DIR / WHEELHOUSE.name
    pinned = {canonicalize_name(w.name): w.version for w in manifest.wheels}
    assert pinned["fraud-platform"] == metadata.version("fraud-platform")
    assert pinned["dagster"] == metadata.version("dagster") and pinned["psycopg"] == metadata.version("psycopg")
    assert not {"pytest", "moto", "ruff", "pulumi"} & set(pinned)  # runtime only, not the dev or infra extras
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    resolved = subprocess.run(
        [
            *(str(venv / "bin" / "python"), "-m", "pip", "install", "--dry-run", "--report", str(tmp_path / "r.json")),
            *("--no-index", "--ignore-installed", *map(str, sorted(folder.glob("*.whl"))), "fraud-platform"),
            *("--disable-pip-version-check", "--quiet"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resolved.returncode == 0, resolved.stderr[-2000:]
    report = json.loads((tmp_path / "r.json").read_text())
    chosen = {canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"] for i in report["install"]}
    assert chosen == pinned  # exactly the pinned set: nothing missing
    assert dependency_closure("fraud-platform", report["install"]) == set(pinned)  # nothing extra: all needed

"""The packaging step (`make package`): both Lambda zips are built for the python3.12 runtime from cp312 wheels
(cached in dist/ by content hash), stay within Lambda's limits, load on Amazon Linux 2023's glibc, and the scorer
carries no TensorFlow; every artifact the stack uploads has a manifest the Pulumi program accepts. No Python 3.12
exists here, so the behavioural check uses the host build of the same zip: a fresh interpreter that sees nothing
but the unzipped scorer (and the standard library) imports the handler and scores with a real .tflite model."""

from __future__ import annotations

import hashlib
import json
import stat
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fraud.app.packaging import (
    DIST_DIR,
    FUNCTIONS,
    GLUE_LIBRARY,
    HOST,
    LAMBDA,
    LAMBDA_UNZIPPED_LIMIT,
    PackagingError,
    build,
    build_all,
    build_function,
)
from fraud.app.packaging.audit import glibc_needed, wheel_tag_problem
from fraud.app.packaging.targets import REPO_ROOT, dotted
from fraud.app.packaging.wheels import fetch_wheel, installed_path, resolve_distributions

MiB = 2**20


@pytest.fixture(scope="module")
def artifacts():
    """What `make package` builds (LAMBDA target): wheels fetched from the package index on a cold cache."""
    return build_all(DIST_DIR)


@pytest.fixture(scope="module")
def manifests(artifacts):
    """The Lambda zips' manifests, by function."""
    return {name: artifacts[spec.artifact] for name, spec in FUNCTIONS.items()}


def _entries(manifest) -> list[zipfile.ZipInfo]:
    with zipfile.ZipFile(manifest.file) as archive:
        return archive.infolist()


def test_zips_stay_within_lambda_limits(manifests):
    for name, manifest in manifests.items():
        assert manifest.file == DIST_DIR / f"lambda-{name}.zip"  # what infra/ deploys
        entries = _entries(manifest)
        unzipped = sum(e.file_size for e in entries)
        assert unzipped == manifest.function.unzipped_bytes  # the manifest reports what is really in the zip
        assert unzipped <= LAMBDA_UNZIPPED_LIMIT, f"{name}: {unzipped / MiB:.0f} MiB unzipped"
        names = {e.filename for e in entries}
        assert (
            f"lambdas/{name}/handler.py" in names
            and "fraud/core/settings.py" in names
            and "lambdas/__init__.py" in names
        )
        assert not any(n.startswith("boto3/") for n in names)  # the managed runtime provides it
        print(
            f"\n{name}: {manifest.bytes / MiB:.1f} MiB zipped, {unzipped / MiB:.1f} MiB unzipped, "
            f"{len(entries)} files, glibc needed {manifest.function.glibc_required}"
        )


def test_every_artifact_has_a_manifest_the_pulumi_program_accepts():
    """One manifest per uploaded file, beside it, naming it relative to dist/ with its SHA-256 and sources; the
    program's reader (infra/artifacts.py, which never imports the packager) takes the real dist/ as built."""
    from infra.artifacts import read_artifacts

    artifacts = build_all(DIST_DIR)  # again (cached): a source edited since the fixture's build makes it stale
    assert sorted(artifacts) == ["glue-fraud-lib", "glue-script", "glue-wheels", "lambda-generator", "lambda-scorer"]
    for name, manifest in artifacts.items():
        if name == "glue-wheels":  # a folder of wheels: tests/glue/test_offline_wheels.py
            continue
        written = json.loads((DIST_DIR / f"{name}.manifest.json").read_text())
        assert written["path"] == manifest.file.name and manifest.file.parent == DIST_DIR
        assert written["sha256"] == hashlib.sha256(manifest.file.read_bytes()).hexdigest()
        assert written["sources"] and all((REPO_ROOT / source).is_file() for source in written["sources"])
    read = read_artifacts(DIST_DIR, REPO_ROOT)
    assert read.scorer.handler == "lambdas.scorer.handler.handler" and read.scorer.runtime == "python3.12"
    assert read.glue_script.path == DIST_DIR / "process_transactions.py"
    assert read.glue_script.path.read_bytes() == (REPO_ROOT / "glue" / "process_transactions.py").read_bytes()
    assert read.glue_library.sha256 == artifacts[GLUE_LIBRARY].sha256
    assert [w.path.name for w in read.glue_wheels] == [Path(w.path).name for w in artifacts["glue-wheels"].wheels]


def test_no_artifact_ships_the_application_layer(artifacts):
    """fraud/app (the CLI, the demo runner, the UI, this packager) is not needed at run time: the handlers and
    the Glue job import the domain only, and none of the zips carries it."""
    for name in ("lambda-generator", "lambda-scorer", "glue-fraud-lib"):
        with zipfile.ZipFile(artifacts[name].file) as archive:
            names = archive.namelist()
        assert "fraud/core/settings.py" in names and not [n for n in names if n.startswith("fraud/app/")], name
    for source in [*(REPO_ROOT / "lambdas").rglob("*.py"), REPO_ROOT / "glue" / "process_transactions.py"]:
        assert "fraud.app" not in source.read_text(), source


def test_zips_carry_cpython_312_wheels_and_no_311_files(manifests):
    for name, manifest in manifests.items():
        assert manifest.function.runtime == "python3.12" and manifest.function.target == "lambda"
        names = {e.filename for e in _entries(manifest)}
        assert "numpy/_core/_multiarray_umath.cpython-312-x86_64-linux-gnu.so" in names
        assert "pydantic_core/_pydantic_core.cpython-312-x86_64-linux-gnu.so" in names
        assert not [n for n in names if "cpython-311" in n or "cp311" in n]
        # 3.11 bytecode would be dead weight to a 3.12 runtime: the zip ships sources only
        assert not manifest.function.precompiled and not [n for n in names if n.endswith(".pyc")]
        with zipfile.ZipFile(manifest.file) as archive:  # the dist-info comes from the cp312 wheel
            assert "Tag: cp312-cp312-manylinux" in archive.read("numpy-2.4.6.dist-info/WHEEL").decode()
            assert archive.read("numpy-2.4.6.dist-info/METADATA").decode().count("Version: 2.4.6") == 1
        installed = {
            d.metadata["Name"]: d.version
            for d in resolve_distributions(FUNCTIONS[name].requirements, omitted=FUNCTIONS[name].omitted)
        }
        assert manifest.function.distributions == installed  # the same pins as the virtualenv the tests run in


def test_scorer_zip_has_no_tensorflow(manifests):
    names = {e.filename.split("/")[0] for e in _entries(manifests["scorer"])}
    assert not {n for n in names if n.startswith(("tensorflow", "keras", "tf_keras", "tensorboard"))}
    assert "ai_edge_litert" in names and "numpy" in names
    assert not set(manifests["scorer"].function.distributions) & {"tensorflow", "tensorflow-cpu", "keras"}


def test_zips_are_reproducible_and_cached(tmp_path, monkeypatch):
    # a frozen copy of the sources, so edits elsewhere in the tree cannot change the inputs between builds
    snapshot = {}
    for source, arcname in build.project_files("generator"):
        copy = tmp_path / "src" / arcname
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(source.read_bytes())
        snapshot[arcname] = copy
    monkeypatch.setattr(build, "project_files", lambda name: [(path, arc) for arc, path in snapshot.items()])
    first = build_function("generator", tmp_path / "a")
    zip_path = first.file
    mtime = zip_path.stat().st_mtime_ns
    again = build_function("generator", tmp_path / "a")  # unchanged inputs: the cached zip is returned
    assert again.content_hash == first.content_hash and zip_path.stat().st_mtime_ns == mtime
    rebuilt = build_function("generator", tmp_path / "b", force=True)
    assert rebuilt.file.read_bytes() == zip_path.read_bytes() and rebuilt.sha256 == first.sha256  # reproducible
    host = build_function("generator", tmp_path / "a", target=HOST)  # another target: its own hash and folder
    assert host.content_hash != first.content_hash and host.file.parent == tmp_path / "a" / "host"
    assert zip_path.stat().st_mtime_ns == mtime
    snapshot["fraud/core/schema.py"].write_text(snapshot["fraud/core/schema.py"].read_text() + "\n# changed\n")
    changed = build_function("generator", tmp_path / "a")
    assert changed.content_hash != first.content_hash and zip_path.stat().st_mtime_ns != mtime


def test_concurrent_builds_of_one_zip_each_finish_whole(tmp_path):
    """Two builds into one dist/ at once (`make package` twice, or two test workers): each writes its own temporary
    file and renames it into place, so both succeed, the zip and manifest are whole, and no temporary file is left
    behind."""
    from concurrent.futures import ThreadPoolExecutor

    dist = tmp_path / "dist"
    with ThreadPoolExecutor(4) as pool:
        built = list(pool.map(lambda _: build_function("generator", dist, force=True), range(4)))
    assert len({manifest.content_hash for manifest in built}) == 1
    zip_path = built[0].file
    with zipfile.ZipFile(zip_path) as archive:
        assert archive.testzip() is None and "lambdas/generator/handler.py" in archive.namelist()
    written = json.loads((dist / "lambda-generator.manifest.json").read_text())
    assert written["content_hash"] == built[0].content_hash and written["sha256"] == built[0].sha256
    assert sorted(path.name for path in dist.iterdir()) == ["lambda-generator.manifest.json", "lambda-generator.zip"]
    assert stat.S_IMODE(zip_path.stat().st_mode) == 0o644


def test_wheel_tags_are_checked_against_the_target():
    def tags(*lines: str) -> str:
        return "Wheel-Version: 1.0\n" + "".join(f"Tag: {line}\n" for line in lines)

    numpy = tags("cp312-cp312-manylinux_2_27_x86_64", "cp312-cp312-manylinux_2_28_x86_64")
    assert wheel_tag_problem(numpy, LAMBDA) is None
    assert wheel_tag_problem(tags("cp39-abi3-manylinux2014_x86_64"), LAMBDA) is None  # stable ABI of an older CPython
    assert wheel_tag_problem(tags("py2-none-any", "py3-none-any"), LAMBDA) is None  # pure Python
    assert wheel_tag_problem(tags("cp311-cp311-manylinux_2_17_x86_64"), LAMBDA)  # another CPython
    assert wheel_tag_problem(tags("cp312-cp312-manylinux_2_35_x86_64"), LAMBDA)  # newer glibc than Amazon Linux 2023
    assert wheel_tag_problem(tags("cp312-cp312-manylinux_2_17_aarch64"), LAMBDA)  # another machine
    assert wheel_tag_problem(tags("cp312-cp312-manylinux_2_27_x86_64"), HOST)  # the host is CPython 3.11
    assert wheel_tag_problem("", LAMBDA) == "no WHEEL tags (not installed from a wheel)"
    dists = {d.metadata["Name"].lower(): d for d in resolve_distributions(FUNCTIONS["scorer"].requirements, HOST)}
    assert "psycopg-binary" in dists  # the [binary] extra was followed
    assert wheel_tag_problem(dists["protobuf"].read_text("WHEEL"), HOST) is None  # cp39-abi3 manylinux2014 x86_64


def test_wheel_entries_land_where_pip_would_install_them():
    assert installed_path("numpy/__init__.py") == "numpy/__init__.py"
    assert installed_path("numpy-2.4.6.dist-info/RECORD") == "numpy-2.4.6.dist-info/RECORD"
    assert installed_path("pkg-1.0.data/platlib/pkg/_ext.so") == "pkg/_ext.so"
    assert installed_path("pkg-1.0.data/purelib/pkg/mod.py") == "pkg/mod.py"
    assert installed_path("pkg-1.0.data/scripts/tool") is None and installed_path("pkg-1.0.data/headers/x.h") is None
    with pytest.raises(PackagingError):
        installed_path("../../etc/passwd")


def test_a_version_without_a_cp312_wheel_is_a_packaging_error_naming_it(tmp_path):
    with pytest.raises(PackagingError, match=r"numpy==1\.9\.0: no cp312 wheel .*pip download exited [1-9]"):
        fetch_wheel("numpy", "1.9.0", LAMBDA, cache=tmp_path)  # numpy 1.9 predates CPython 3.12 by a decade
    assert [p.name for p in tmp_path.rglob("*") if p.parent != tmp_path] == []  # no half-downloaded folder left


def test_every_shared_object_loads_on_amazon_linux_2023(manifests):
    """The audit, redone from the zip's bytes: nothing above glibc 2.34, and at least one object above 2.26
    (numpy 2.4 needs 2.27), which is why the python3.11 runtime (Amazon Linux 2) cannot take these zips."""
    assert LAMBDA.glibc == (2, 34) and LAMBDA.os_image == "Amazon Linux 2023"
    for name, manifest in manifests.items():
        written = json.loads((DIST_DIR / f"lambda-{name}.manifest.json").read_text())["function"]
        problems = written["needs_newer_glibc"], written["wheel_tag_problems"]
        assert written["runtime_compatible"] is True, (name, problems)
        assert written["runtime"] == "python3.12" and written["glibc_runtime"] == "2.34"
        needed = {}
        with zipfile.ZipFile(manifest.file) as archive:
            for entry in archive.namelist():
                if ".so" in entry.rsplit("/", 1)[-1] and (version := glibc_needed(archive.read(entry))):
                    needed[entry] = version
        assert needed and max(needed.values()) <= (2, 34)
        assert dotted(max(needed.values())) == manifest.function.glibc_required
        assert needed["numpy/_core/_multiarray_umath.cpython-312-x86_64-linux-gnu.so"] > (2, 26)


WEIGHTS = np.array([[0.5], [-1.0], [2.0], [0.25]], dtype=np.float32)
BIAS = np.array([-0.1], dtype=np.float32)


@pytest.fixture(scope="module")
def tiny_tflite(tmp_path_factory) -> Path:
    """A real .tflite file: a 4-input logistic unit with known weights, converted by TensorFlow (in a
    subprocess, so this test process never loads TensorFlow)."""
    path = tmp_path_factory.mktemp("model") / "model.tflite"
    script = textwrap.dedent(f"""
        import numpy as np, tensorflow as tf
        model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(1, activation="sigmoid")])
        weights = [np.array({WEIGHTS.tolist()}, dtype=np.float32), np.array({BIAS.tolist()}, dtype=np.float32)]
        model.layers[0].set_weights(weights)
        open({str(path)!r}, "wb").write(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    """)
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, timeout=300)
    return path


COLD_START = textwrap.dedent("""
    import sys, time
    started = time.perf_counter()
    folder, model = sys.argv[1], sys.argv[2]
    sys.path.insert(0, folder)
    import numpy as np
    from lambdas.scorer.handler import handler  # noqa: F401  the Lambda entry point imports
    from fraud.model.litert import TFLiteScorer
    scorer = TFLiteScorer(open(model, "rb").read())
    scores = scorer.predict(np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0.5, 0.5, 0.5, 0.5]], dtype=np.float32))
    elapsed = time.perf_counter() - started
    outside = sorted(name for name, module in sys.modules.items()
                     if getattr(module, "__file__", None) and not module.__file__.startswith((folder, sys.base_prefix)))
    print({"scores": scores.tolist(), "seconds": elapsed, "tensorflow": "tensorflow" in sys.modules,
           "outside": outside, "path": sys.path})
""")


@pytest.fixture(scope="module")
def host_scorer():
    """The scorer zip built for this interpreter (python3.11, this glibc): the same code path and pruning as the
    deployable one, with the distributions copied from the virtualenv, since no Python 3.12 exists here."""
    return build_function("scorer", DIST_DIR, target=HOST)


def test_cold_start_imports_the_scorer_and_runs_a_tflite_model_from_the_zip_alone(host_scorer, tiny_tflite, tmp_path):
    assert host_scorer.file == DIST_DIR / "host" / "lambda-scorer.zip" and host_scorer.function.runtime_compatible
    folder = tmp_path / "task"  # like /var/task: the unzipped code, read-only
    with zipfile.ZipFile(host_scorer.file) as archive:
        assert "lambdas/scorer/__pycache__/handler.cpython-311.pyc" in archive.namelist()  # precompiled for 3.11
        archive.extractall(folder)
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        # -I: no PYTHON* variables, no user site; -S: no site-packages (so not the project's .venv); -B: no .pyc writes
        began = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-I", "-S", "-B", "-c", COLD_START, str(folder), str(tiny_tflite)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        wall = time.perf_counter() - began
        assert result.returncode == 0, result.stderr[-3000:]
        report = eval(result.stdout.strip().splitlines()[-1])  # noqa: S307  our own child's repr of plain values
    finally:
        for path in [folder, *folder.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    assert not report["tensorflow"] and report["outside"] == []
    assert not any("site-packages" in entry for entry in report["path"])
    inputs = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0.5, 0.5, 0.5, 0.5]], dtype=np.float32)
    expected = 1 / (1 + np.exp(-(inputs @ WEIGHTS + BIAS)))
    np.testing.assert_allclose(report["scores"], expected.ravel(), atol=1e-6)
    print(
        f"\ncold start (imports + model load + first prediction): {report['seconds']:.2f} s in-process, "
        f"{wall:.2f} s with interpreter start"
    )

"""The packaging step: both Lambda zips are built (cached in dist/ by content hash), stay within Lambda's
limits, the scorer carries no TensorFlow, and a fresh interpreter that sees nothing but the unzipped scorer
(and the standard library) imports the handler and scores with a real .tflite model."""
from __future__ import annotations

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

from lambdas.package import (DIST_DIR, FUNCTIONS, LAMBDA_UNZIPPED_LIMIT, TARGET, build_function, glibc_needed,
                             resolve_distributions, wheel_tag_problem)

MiB = 2**20


@pytest.fixture(scope="module")
def manifests():
    return {name: build_function(name, DIST_DIR) for name in FUNCTIONS}


def _entries(manifest) -> list[zipfile.ZipInfo]:
    with zipfile.ZipFile(manifest.zip_path) as archive:
        return archive.infolist()


def test_zips_stay_within_lambda_limits(manifests):
    for name, manifest in manifests.items():
        entries = _entries(manifest)
        unzipped = sum(e.file_size for e in entries)
        assert unzipped == manifest.unzipped_bytes  # the manifest reports what is really in the zip
        assert unzipped <= LAMBDA_UNZIPPED_LIMIT, f"{name}: {unzipped / MiB:.0f} MiB unzipped"
        names = {e.filename for e in entries}
        assert f"lambdas/{name}/handler.py" in names and "fraud/settings.py" in names and "lambdas/__init__.py" in names
        assert f"lambdas/{name}/__pycache__/handler.cpython-311.pyc" in names  # no recompiling at cold start
        assert not any(n.startswith("boto3/") for n in names)  # the managed runtime provides it
        print(f"\n{name}: {manifest.zipped_bytes / MiB:.1f} MiB zipped, {unzipped / MiB:.1f} MiB unzipped, "
              f"{len(entries)} files, glibc needed {manifest.glibc_required}")


def test_scorer_zip_has_no_tensorflow(manifests):
    names = {e.filename.split("/")[0] for e in _entries(manifests["scorer"])}
    assert not {n for n in names if n.startswith(("tensorflow", "keras", "tf_keras", "tensorboard"))}
    assert "ai_edge_litert" in names and "numpy" in names
    assert not set(manifests["scorer"].distributions) & {"tensorflow", "tensorflow-cpu", "keras"}


def test_zips_are_reproducible_and_cached(tmp_path, monkeypatch):
    import lambdas.package as package

    # a frozen copy of the sources, so edits elsewhere in the tree cannot change the inputs between builds
    snapshot = {}
    for source, arcname in package.project_files("generator"):
        copy = tmp_path / "src" / arcname
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(source.read_bytes())
        snapshot[arcname] = copy
    monkeypatch.setattr(package, "project_files", lambda name: [(path, arc) for arc, path in snapshot.items()])
    first = build_function("generator", tmp_path / "a")
    zip_path = Path(first.zip_path)
    mtime = zip_path.stat().st_mtime_ns
    again = build_function("generator", tmp_path / "a")  # unchanged inputs: the cached zip is returned
    assert again.content_hash == first.content_hash and zip_path.stat().st_mtime_ns == mtime
    rebuilt = build_function("generator", tmp_path / "b", force=True)
    assert Path(rebuilt.zip_path).read_bytes() == zip_path.read_bytes()  # byte-for-byte reproducible
    snapshot["fraud/schema.py"].write_text(snapshot["fraud/schema.py"].read_text() + "\n# changed\n")
    changed = build_function("generator", tmp_path / "a")
    assert changed.content_hash != first.content_hash and zip_path.stat().st_mtime_ns != mtime


def test_wheel_tags_and_glibc_audit():
    dists = {d.metadata["Name"].lower(): d for d in resolve_distributions(FUNCTIONS["scorer"].requirements)}
    assert "psycopg-binary" in dists  # the [binary] extra was followed
    assert wheel_tag_problem(dists["pydantic"]) is None  # pure Python
    assert wheel_tag_problem(dists["protobuf"]) is None  # cp39-abi3 manylinux2014 x86_64: fine on CPython 3.11
    assert glibc_needed(b"\0GLIBC_2.17\0GLIBC_2.2.5\0GLIBC_2.28\0") == (2, 28)
    assert glibc_needed(b"no versions here") is None


def test_manifest_names_each_shared_object_too_new_for_the_runtime(manifests):
    for manifest in manifests.values():
        with zipfile.ZipFile(manifest.zip_path) as archive:
            for path, version in manifest.needs_newer_glibc.items():
                major, minor = glibc_needed(archive.read(path))
                assert "%d.%d" % (major, minor) == version and (major, minor) > TARGET.glibc
        assert json.loads(Path(manifest.zip_path).with_suffix(".json").read_text())["runtime_compatible"] \
            == (not manifest.needs_newer_glibc and not manifest.wheel_tag_problems)


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
        model.layers[0].set_weights([np.array({WEIGHTS.tolist()}, dtype=np.float32), np.array({BIAS.tolist()}, dtype=np.float32)])
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
    from fraud.scoring import TFLiteScorer
    scorer = TFLiteScorer(open(model, "rb").read())
    scores = scorer.predict(np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0.5, 0.5, 0.5, 0.5]], dtype=np.float32))
    elapsed = time.perf_counter() - started
    outside = sorted(name for name, module in sys.modules.items()
                     if getattr(module, "__file__", None) and not module.__file__.startswith((folder, sys.base_prefix)))
    print({"scores": scores.tolist(), "seconds": elapsed, "tensorflow": "tensorflow" in sys.modules,
           "outside": outside, "path": sys.path})
""")


def test_cold_start_imports_the_scorer_and_runs_a_tflite_model_from_the_zip_alone(manifests, tiny_tflite, tmp_path):
    folder = tmp_path / "task"  # like /var/task: the unzipped code, read-only
    with zipfile.ZipFile(manifests["scorer"].zip_path) as archive:
        archive.extractall(folder)
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        # -I: no PYTHON* variables, no user site; -S: no site-packages (so not the project's .venv); -B: no .pyc writes
        began = time.perf_counter()
        result = subprocess.run([sys.executable, "-I", "-S", "-B", "-c", COLD_START, str(folder), str(tiny_tflite)],
                                capture_output=True, text=True, timeout=120, cwd=tmp_path)
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
    print(f"\ncold start (imports + model load + first prediction): {report['seconds']:.2f} s in-process, "
          f"{wall:.2f} s with interpreter start")

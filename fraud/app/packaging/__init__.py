"""The packaging step: builds every artifact the stack uploads into `dist/`, each with a manifest beside it
(`<name>.manifest.json`: its file, SHA-256 and what the Pulumi program needs). `make package`, `fraud package`
or `python -m fraud.app.packaging`; the Pulumi program only reads the manifests (infra/artifacts.py).

- `lambda-generator.zip`, `lambda-scorer.zip`: `lambdas/<name>/`, the domain package `fraud/` (without the
  application layer `fraud/app/`) and the third-party distributions the handler imports, built for a `Target`.
  `LAMBDA` (the default, what `pulumi up` deploys): the `python3.12` runtime on Amazon Linux 2023 (glibc 2.34,
  x86_64), each distribution at the version installed in this virtualenv (pyproject's pins stay the single
  source of truth) fetched as its CPython 3.12 wheel (cached in `dist/.cache/wheels/`) and unpacked; sources
  only, as no Python 3.12 here can compile them (see `build.compile_tree`). `HOST` (for the local cold-start
  test): this interpreter and glibc, files copied from the virtualenv, precompiled, into `dist/host/`.
- `glue-fraud-lib.zip`: the domain package for the Glue job's `--extra-py-files`.
- `process_transactions.py`: the Glue job's script, copied so that what is deployed is what was packaged.
- `glue-wheels/`: the Glue job's third-party wheels for Glue 5.0 (CPython 3.11, Amazon Linux 2023), installed
  from the artifacts bucket with `--no-index` (its subnets have no internet), and `requirements.txt`.
- `wheelhouse/` (only `fraud package --wheelhouse`, for the container image): the project's wheel and every pinned
  runtime dependency's for this machine, for `pip install --no-index dist/wheelhouse/*.whl`.

Every Lambda build is audited (`audit`): wheel tags must fit the target's CPython, and no shared object may ask
for a newer glibc than the target's. Zips are reproducible (sorted entries, fixed timestamps) and cached by a
hash of everything that goes into them, so a rebuild only happens when a source or a distribution changes.

Modules: `targets` (what is built, for what), `sources` (this repository's files), `wheels` (third-party
distributions), `audit`, `files` (reproducible zips, atomic writes), `manifests`, `build`, `wheelsets` (folders
of wheels for offline installs).
"""

from __future__ import annotations

from fraud.app.packaging.build import (
    GLUE_LIBRARY,
    GLUE_SCRIPT_ARTIFACT,
    build_all,
    build_function,
    build_glue_library,
    build_glue_script,
)
from fraud.app.packaging.manifests import FunctionBuild, Manifest, WheelFile, describe, manifest_path
from fraud.app.packaging.targets import (
    DIST_DIR,
    FUNCTIONS,
    GLUE,
    GLUE_WHEELS,
    HOST,
    LAMBDA,
    LAMBDA_UNZIPPED_LIMIT,
    TARGETS,
    PackagingError,
    Target,
)
from fraud.app.packaging.wheelsets import WHEELHOUSE, build_glue_wheels, build_wheelhouse

__all__ = [
    "DIST_DIR",
    "FUNCTIONS",
    "GLUE",
    "GLUE_LIBRARY",
    "GLUE_SCRIPT_ARTIFACT",
    "GLUE_WHEELS",
    "HOST",
    "LAMBDA",
    "LAMBDA_UNZIPPED_LIMIT",
    "TARGETS",
    "WHEELHOUSE",
    "FunctionBuild",
    "Manifest",
    "PackagingError",
    "Target",
    "WheelFile",
    "build_all",
    "build_function",
    "build_glue_library",
    "build_glue_script",
    "build_glue_wheels",
    "build_wheelhouse",
    "describe",
    "manifest_path",
]

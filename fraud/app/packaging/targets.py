"""What is built, for what: the runtimes a zip can target, the Lambda functions and their requirements, where
builds go, and the rules no build may break."""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
DIST_DIR = REPO_ROOT / "dist"
CACHE_DIR = DIST_DIR / ".cache"  # staged distributions and downloaded wheels, shared by every dist dir
WHEEL_CACHE_DIR = CACHE_DIR / "wheels"
PACKAGER_VERSION = "2"  # bump when the layout or pruning rules change: invalidates every cached zip

# AWS Lambda quotas (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html)
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024  # function code and layers, unzipped
LAMBDA_DIRECT_UPLOAD_LIMIT = 50 * 1024 * 1024  # zipped, uploaded in the API call; larger zips go through S3


class PackagingError(RuntimeError):
    pass


def dotted(version: tuple[int, int]) -> str:
    """(2, 34) -> "2.34": how Python and glibc versions are written in manifests, tags and pip's options."""
    return ".".join(map(str, version))


@dataclass(frozen=True)
class Target:
    """What a zip is built for: the interpreter and OS image that will import it."""

    name: str
    runtime: str
    python: tuple[int, int]
    machine: str
    os_image: str
    glibc: tuple[int, int]  # of the OS image: shared objects needing newer symbols fail to load
    from_wheels: bool  # fetch the target's wheels of the installed versions, or copy this virtualenv's files

    @property
    def precompile(self) -> bool:
        """compileall writes bytecode for the interpreter running it: only useful when that is the target's."""
        return self.python == sys.version_info[:2]

    @property
    def cpython(self) -> str:
        return "cp" + "".join(map(str, self.python))

    def output_dir(self, dist_dir: Path) -> Path:
        """The deployable build goes to `dist/` itself, any other next to it in a folder of its own."""
        return dist_dir if self == LAMBDA else dist_dir / self.name


def _host_glibc() -> tuple[int, int]:
    """This machine's glibc; (0, 0) without one (e.g. macOS), where any Linux shared object counts as too new
    for a host build, while the lambda target builds as anywhere."""
    library, version = platform.libc_ver()
    if library != "glibc":
        return 0, 0
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


# The python3.12+ managed runtimes run on Amazon Linux 2023 (glibc 2.34); python3.11 on Amazon Linux 2
# (glibc 2.26) is too old for numpy 2.4, ml_dtypes 0.6 and ai-edge-litert 2.3, which need 2.27.
LAMBDA = Target(
    name="lambda",
    runtime="python3.12",
    python=(3, 12),
    machine="x86_64",
    os_image="Amazon Linux 2023",
    glibc=(2, 34),
    from_wheels=True,
)
HOST = Target(
    name="host",
    runtime="python" + dotted(sys.version_info[:2]),
    python=sys.version_info[:2],
    machine=platform.machine(),
    os_image="this machine",
    glibc=_host_glibc(),
    from_wheels=False,
)
TARGETS = {target.name: target for target in (LAMBDA, HOST)}
# AWS Glue 5.0 (Spark 3.5, Python 3.11) runs on Amazon Linux 2023 (glibc 2.34), in the private subnets with no
# route to a package index: its third-party wheels ship as the `glue-wheels` set (wheelsets.py), not as a target
# of the Lambda builds (so not in TARGETS).
GLUE = Target(
    name="glue",
    runtime="glue-5.0 (python3.11)",
    python=(3, 11),
    machine="x86_64",
    os_image="Amazon Linux 2023",
    glibc=(2, 34),
    from_wheels=True,
)


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    requirements: tuple[str, ...]  # what the handler imports; their dependencies are resolved from metadata
    forbidden: tuple[str, ...] = ()  # distributions that must never end up in the zip
    # dependencies a requirement declares that the handler never imports: not shipped
    omitted: tuple[str, ...] = ()

    @property
    def handler(self) -> str:
        return f"lambdas.{self.name}.handler.handler"

    @property
    def artifact(self) -> str:
        """The zip's name without `.zip`, and its manifest's without `.manifest.json`."""
        return f"lambda-{self.name}"


# boto3 is not shipped: the managed runtime has it (fraud/ imports it lazily, only in aws mode), and its 23 MiB
# would take the scorer far past its size goal.
FUNCTIONS: dict[str, FunctionSpec] = {
    "generator": FunctionSpec("generator", ("numpy", "pandas", "Faker", "pydantic-settings", "dagster-pipes")),
    "scorer": FunctionSpec(
        "scorer",
        (
            "ai-edge-litert",
            "numpy",
            "pandas",
            "SQLAlchemy",
            "psycopg[binary]",
            "psycopg-pool",
            "pydantic-settings",
            "tenacity",
            "dagster-pipes",
            "common-expression-language",
        ),
        forbidden=("tensorflow", "tensorflow-cpu", "keras", "tf-keras", "tensorboard"),
        # the CEL package's command line (cel.cli): fraud/rules/cel_engine.py loads the compiled module alone
        omitted=("typer", "rich", "prompt-toolkit", "pygments"),
    ),
}


@dataclass(frozen=True)
class WheelSetSpec:
    """A folder of wheels installed with `pip install --no-index`, where no package index can be reached."""

    name: str  # its folder in dist/, and its manifest's name without `.manifest.json`
    requirements: tuple[str, ...]  # what the code imports; their dependencies are resolved from metadata
    provided: tuple[str, ...] = ()  # distributions the runtime already has: never shipped, never upgraded


# What the Glue job (glue/process_transactions.py and the fraud/ modules it imports) needs beyond Glue 5.0's own
# modules: settings (pydantic-settings, with pydantic), the load into PostgreSQL (SQLAlchemy, psycopg with its
# binary libpq) and Dagster Pipes. Glue provides Spark's Python side and the data stack the job reads with
# (pyspark, py4j, pandas, numpy, pyarrow) and the AWS SDK (boto3): shipping other versions of those would fight
# the Spark runtime they were built for, so they are left out even if a dependency names them.
GLUE_WHEELS = WheelSetSpec(
    "glue-wheels",
    ("pydantic-settings", "SQLAlchemy", "psycopg[binary]", "dagster-pipes"),
    provided=(
        *("pyspark", "py4j", "pandas", "numpy", "pyarrow", "python-dateutil", "pytz", "tzdata", "six"),
        *("boto3", "botocore", "s3transfer", "jmespath", "urllib3"),
    ),
)

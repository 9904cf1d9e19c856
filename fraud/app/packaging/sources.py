"""What goes into a zip from this repository, and what never goes into any zip."""

from __future__ import annotations

from pathlib import Path

from fraud.app.packaging.targets import REPO_ROOT

# Files no handler needs on Lambda: test suites, type stubs, C headers and static libraries (for building
# against a package), and LiteRT's NPU compiler plugins, WebGPU accelerator, AOT and model tools (Lambda has
# neither an NPU nor a GPU; the CPU interpreter does not load them).
PRUNED_PARTS = {"tests", "__pycache__"}
PRUNED_SUFFIXES = (".pyc", ".pyi", ".h", ".c", ".pxd", ".pyx", ".a")
PRUNED_PREFIXES = (
    "ai_edge_litert/vendors/",
    "ai_edge_litert/libLiteRtWebGpuAccelerator.so",
    "ai_edge_litert/aot/",
    "ai_edge_litert/tools/",
)
# the application layer (CLI, demo runner, UI, this packager): the handlers and the Glue job never import it
APPLICATION_LAYER = "fraud/app/"

# what the project's packages consist of (pyproject's package data); editor backups and stray files stay out
PROJECT_SUFFIXES = {".py", ".j2", ".ini", ".mako", ".toml"}

GLUE_SCRIPT = "glue/process_transactions.py"
# the installable project (pyproject's packages and metadata): what `pip wheel .` builds the project's wheel from
PROJECT_PACKAGES = ("fraud", "assets", "lambdas", "glue")
PROJECT_METADATA = ("pyproject.toml", "README.md")


def pruned(arcname: str) -> bool:
    parts = arcname.split("/")
    return (
        bool(PRUNED_PARTS.intersection(parts[:-1]))
        or arcname.endswith(PRUNED_SUFFIXES)
        or arcname.startswith(PRUNED_PREFIXES)
    )


def _package_files(root: Path) -> list[tuple[Path, str]]:
    files = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(REPO_ROOT).as_posix()
        if path.is_file() and path.suffix in PROJECT_SUFFIXES and not pruned(relative):
            files.append((path, relative))
    return files


def domain_files() -> list[tuple[Path, str]]:
    """The `fraud/` package without its application layer: code, templates, migrations."""
    return [
        (path, arcname)
        for path, arcname in _package_files(REPO_ROOT / "fraud")
        if not arcname.startswith(APPLICATION_LAYER)
    ]


def project_files(function: str) -> list[tuple[Path, str]]:
    """(file, path in the zip) for a Lambda zip: the domain package and the handler's own folder."""
    handler = [(REPO_ROOT / "lambdas" / "__init__.py", "lambdas/__init__.py")]
    return domain_files() + handler + _package_files(REPO_ROOT / "lambdas" / function)


def glue_script() -> list[tuple[Path, str]]:
    """The Glue job's script, as (file, path in the repository)."""
    return [(REPO_ROOT / GLUE_SCRIPT, GLUE_SCRIPT)]


def installable_files() -> list[tuple[Path, str]]:
    """Everything the project's own wheel is built from: its packages (the application layer included) and
    pyproject's metadata."""
    files = [(REPO_ROOT / name, name) for name in PROJECT_METADATA if (REPO_ROOT / name).is_file()]
    for package in PROJECT_PACKAGES:
        files += _package_files(REPO_ROOT / package)
    return files

"""The CEL engine: the compiled module of `common-expression-language`, loaded on its own.

The package's `__init__` also imports its command line (`cel.cli`: typer, rich, prompt_toolkit, pygments), which
took 130 ms of every cold start and would put four distributions in the scorer Lambda for nothing. The compiled
extension does not need them, so it is loaded from its file under its own name, `cel.cel`; a later `import cel`
(the CLI) finds it in `sys.modules` and uses the same module."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

_NAME = "cel.cel"


def load() -> ModuleType:
    if _NAME in sys.modules:
        return sys.modules[_NAME]
    package = importlib.util.find_spec("cel")  # finds the package without running its __init__
    if package is None or not package.submodule_search_locations:
        raise ImportError("common-expression-language is not installed")
    folder = Path(next(iter(package.submodule_search_locations)))
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = folder / f"cel{suffix}"
        if path.is_file():
            spec = importlib.util.spec_from_file_location(_NAME, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[_NAME] = module
            spec.loader.exec_module(module)
            return module
    raise ImportError(f"no compiled CEL module in {folder}")


cel = load()

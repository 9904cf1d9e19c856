"""`python -m fraud.app.packaging [--function generator|scorer] [--target lambda|host] [--dist DIR] [--force]
[--wheelhouse]`"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fraud.app.packaging import build, wheelsets
from fraud.app.packaging.manifests import describe
from fraud.app.packaging.targets import DIST_DIR, FUNCTIONS, LAMBDA, TARGETS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fraud.app.packaging", description="Build the artifacts the stack uploads, with their manifests."
    )
    parser.add_argument("--function", choices=sorted(FUNCTIONS), action="append", help="default: every function")
    parser.add_argument(
        "--target",
        choices=sorted(TARGETS),
        default=LAMBDA.name,
        help=f"lambda: {LAMBDA.runtime} on {LAMBDA.os_image} (deployed); host: this interpreter, "
        "into DIST/host (for local tests)",
    )
    parser.add_argument("--dist", type=Path, default=DIST_DIR)
    parser.add_argument("--force", action="store_true", help="rebuild even when the content hash is unchanged")
    parser.add_argument(
        "--wheelhouse",
        action="store_true",
        help="build only DIST/wheelhouse: the project's and its pinned runtime dependencies' wheels for this machine",
    )
    args = parser.parse_args(argv)
    if args.wheelhouse:
        print(describe(wheelsets.build_wheelhouse(args.dist, args.force)))
        return 0
    for manifest in build.build_all(args.dist, args.force, TARGETS[args.target], args.function).values():
        print(describe(manifest))
    return 0


if __name__ == "__main__":
    sys.exit(main())

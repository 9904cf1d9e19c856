"""The fixtures every infra test module shares: a fake dist/ (the packaged artifacts the program reads) and the
whole program run once per module under Pulumi's mocks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.infra.fake_dist import write_fake_dist
from tests.infra.test_program import Program, run_program, with_dist


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    return write_fake_dist(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def program(dist) -> Program:
    return run_program(with_dist(dist))

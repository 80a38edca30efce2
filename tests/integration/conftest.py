"""pytest fixtures over tests/harness.py."""
import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from harness import Daemon, make_workdir  # noqa: E402


@pytest.fixture
def workdir():
    path = make_workdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemon_factory(workdir):
    """Makes daemons from YAML text; stops them (SIGTERM, then SIGKILL) after the test."""
    made = []

    def make(config_text, node="node1", start=True):
        d = Daemon(workdir, config_text, node=node)
        made.append(d)
        return d.start() if start else d

    yield make
    for d in made:
        try:
            d.stop()
        finally:
            d.kill()

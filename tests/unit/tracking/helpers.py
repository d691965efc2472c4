"""Shared by the tracking tests: a client of the test store, a metrics record, a store that always fails,
a read-only file."""
import os
import subprocess

import pytest

from repro import tracking

RECORD = {"AP": 0.4321, "AP50": 0.8, "source": "trained", "checkpoint": "x.pth", "config": "256x192"}


def client():
    from mlflow.tracking import MlflowClient
    return MlflowClient(tracking.tracking_uri())


def make_read_only(path):
    """Read-only even for root (CI runs as root): the immutable attribute; else plain permissions."""
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
            pytest.skip("running as root on a filesystem without chattr +i: cannot make a read-only file")
        return lambda: subprocess.run(["chattr", "-i", str(path)], check=True)
    path.chmod(0o444)
    return lambda: path.chmod(0o644)


class BrokenClient:
    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise ConnectionError("store went away")
        return fail

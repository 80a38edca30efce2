import os


def test_binaries_built():
    build = os.environ["CLUSTERD_BUILD"]
    assert os.access(os.path.join(build, "daemon", "clusterd"), os.X_OK)
    assert os.access(os.path.join(build, "cli", "clusterctl"), os.X_OK)

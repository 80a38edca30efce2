"""A configuration changed while a node is down (issue 5, lab test; lab name prefix df): three
nodes, node-majority, the ledger group with its disk. A first version is applied with every node
up (so the node holds a committed version of its own), then one node is killed, a newer version is
applied on a survivor, and the node is started again with its older /etc/clusterd/cluster.yaml and
Raft state -> it runs with the cluster's new version (clusterctl on it shows the version and the new group,
its /etc copy is replaced by the committed text) and its older file never wins, neither on it
nor on the others."""
import json
import os

import pytest

from harness import wait_for
from lab_harness import clab, group_owner, ledger_lab

NAME = "dfconfig"
NODES = ["node1", "node2", "node3"]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a lab needs root (namespaces)")

# Added by a new version: a group that never starts by itself, so nothing but the
# configuration changes (its presence is the version's visible content on every node).
MARKER_GROUP = """  - name: {name}
    autostart: false
    resources:
      - name: idle
        type: process
        params:
          command: /bin/sleep
          args: ["3600"]
"""


@pytest.fixture(scope="module")
def lab():
    with ledger_lab(NAME, NODES) as lab:
        yield lab


def ctl_json(lab, node, *args):
    """clusterctl ARGS --json inside `node`; None when its clusterd does not answer."""
    r = clab("ctl", "--name", lab.name, node, *args, "--json", check=False)
    return json.loads(r.stdout) if r.returncode == 0 else None


def cluster(lab, node):
    return ctl_json(lab, node, "cluster") or {}


def version(lab, node):
    """The committed configuration version `node` runs with (None: its clusterd is down)."""
    return cluster(lab, node).get("config_version")


def group_names(lab, node):
    status = ctl_json(lab, node, "status")
    return sorted(g["name"] for g in status["groups"]) if status else None


def config_file(lab, node):
    """The node's /etc/clusterd/cluster.yaml, read on the host (labkit bind-mounts it)."""
    with open(os.path.join(lab.directory(), node, "etc", "cluster.yaml")) as f:
        return f.read()


def apply(lab, node, text, tmp_path, nodes, expected):
    path = tmp_path / f"cluster-{expected}.yaml"
    path.write_text(text)
    lab.ctl(node, "apply", str(path))
    wait_for(lambda: all(version(lab, n) == expected for n in nodes), timeout=30,
             what=f"version {expected} committed on {nodes}")


def test_node_down_during_apply_comes_back_with_the_new_version(lab, tmp_path):
    holder = group_owner(lab, NODES)
    assert holder
    # Kill a node that does not own the ledger: the group and its disk stay where they are.
    down = next(n for n in NODES if n != holder)
    survivors = [n for n in NODES if n != down]
    # A first change with every node up: the node to be killed holds a committed version of its
    # own (in its Raft state and its file), older than the one it will miss.
    first_text = config_file(lab, holder) + MARKER_GROUP.format(name="marker1")
    apply(lab, holder, first_text, tmp_path, NODES, version(lab, holder) + 1)
    before = version(lab, holder)
    wait_for(lambda: config_file(lab, down) == first_text, timeout=10,
             what=f"{down} saving version {before}")
    old_text = config_file(lab, down)

    lab.run("kill-node", down)
    # The killed node may have been the coordinator: apply once the survivors have another.
    wait_for(lambda: all(cluster(lab, n).get("coordinator") in survivors
                         and cluster(lab, n).get("quorate") for n in survivors),
             timeout=30, what="the survivors agreeing on a coordinator among them")
    new_text = old_text + MARKER_GROUP.format(name="marker")
    apply(lab, survivors[0], new_text, tmp_path, survivors, before + 1)
    assert all("marker" in group_names(lab, n) for n in survivors)
    assert all(config_file(lab, n) == new_text for n in survivors)
    # The node that was down missed it: its file is still the old one when it starts.
    assert config_file(lab, down) == old_text

    lab.run("start-node", down)
    wait_for(lambda: version(lab, down) == before + 1, timeout=60,
             what=f"{down} running the cluster's new version after its restart")
    assert "marker" in group_names(lab, down)
    wait_for(lambda: config_file(lab, down) == new_text, timeout=10,
             what=f"{down}'s /etc copy replaced by the committed text")
    # Its older file never won anywhere: every node runs the new version with the new group,
    # and the ledger group stayed with its owner and its disk.
    wait_for(lambda: all(cluster(lab, n).get("coordinator") in NODES for n in NODES),
             timeout=30, what="every node agreeing on a coordinator")
    for node in NODES:
        assert version(lab, node) == before + 1, node
        assert "marker" in group_names(lab, node), node
        assert config_file(lab, node) == new_text, node
    assert group_owner(lab, NODES) == holder
    print(f"{down} was down while version {before} became {before + 1}; it came back with "
          f"{version(lab, down)} and groups {group_names(lab, down)}")

    # Started again from the file it now has, it stays at the new version (and not above).
    lab.run("stop-node", down)
    lab.run("start-node", down)
    wait_for(lambda: version(lab, down) == before + 1 and "marker" in group_names(lab, down),
             timeout=60, what=f"{down} back at the new version after a second restart")

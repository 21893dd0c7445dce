"""deploy/kubernetes: every manifest is valid against the Kubernetes schemas
(kubernetes-validate, which ships them: no network), and the DaemonSet declares what
the README promises: least privilege, the stop signal and grace period the
supervisor needs, `scx_pyland status` as its probes, the metrics port."""

from __future__ import annotations

import re
import shlex
import socket
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from scx_pyland.cli import build_parser
from scx_pyland.supervisor import SupervisorOptions

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "kubernetes"
MANIFESTS = sorted(DEPLOY.glob("*.yaml"))
# lifecycle.stopSignal came with 1.33; the newest the package knows is checked too.
VERSIONS = ["1.33.0", kubernetes_validate.utils.latest_version()]
NODE_LABEL = "scx-pyland.io/sched-ext"


def load(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def container() -> dict:
    return load("daemonset.yaml")["spec"]["template"]["spec"]["containers"][0]


@pytest.fixture
def offline(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("kubernetes-validate tried to use the network")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=[p.name for p in MANIFESTS])
def test_every_manifest_is_valid_offline(offline, path, version):
    for document in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(document, version, strict=True)


def test_validation_catches_a_misspelt_field(offline):
    daemonset = load("daemonset.yaml")
    daemonset["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilites"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(daemonset, VERSIONS[-1], strict=True)


def test_there_are_a_namespace_a_configmap_and_a_daemonset_in_one_namespace():
    kinds = {load(p.name)["kind"]: load(p.name) for p in MANIFESTS}
    assert set(kinds) == {"Namespace", "ConfigMap", "DaemonSet"}
    namespace = kinds["Namespace"]["metadata"]["name"]
    assert kinds["ConfigMap"]["metadata"]["namespace"] == kinds["DaemonSet"]["metadata"]["namespace"] == namespace


def test_it_runs_only_on_nodes_labelled_as_having_sched_ext_and_the_readme_says_which():
    pod = load("daemonset.yaml")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {NODE_LABEL: "true"}
    assert f"{NODE_LABEL}=true" in (ROOT / "README.md").read_text()


def test_least_privilege_and_no_host_pid():
    pod = load("daemonset.yaml")["spec"]["template"]["spec"]
    assert not pod.get("hostPID") and not pod.get("hostNetwork")
    security = container()["securityContext"]
    assert not security["privileged"] and not security["allowPrivilegeEscalation"]
    assert security["capabilities"] == {"drop": ["ALL"], "add": ["BPF", "PERFMON", "IPC_LOCK"]}
    assert not any(v.get("hostPath") for v in pod.get("volumes", []))


def test_it_stops_with_the_images_signal_and_waits_longer_than_the_supervisor():
    stop_signal = re.search(r"^STOPSIGNAL (\S+)", (ROOT / "Containerfile").read_text(), re.M).group(1)
    assert container()["lifecycle"]["stopSignal"] == stop_signal == "SIGINT"
    grace = load("daemonset.yaml")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > SupervisorOptions().stop_timeout


@pytest.mark.parametrize("probe", ["startupProbe", "livenessProbe", "readinessProbe"])
def test_the_probes_are_scx_pyland_status(probe):
    assert container()[probe]["exec"]["command"] == ["scx_pyland", "status"]


def options() -> list[str]:
    """The ConfigMap's options as the container's `sh -c` splits them."""
    return shlex.split(load("configmap.yaml")["data"]["SCX_PYLAND_OPTIONS"])


def test_the_command_execs_scx_pyland_with_the_configmaps_options():
    c = container()
    assert c["command"] == ["/bin/sh", "-c", "exec scx_pyland $SCX_PYLAND_OPTIONS"]
    ref = c["env"][0]["valueFrom"]["configMapKeyRef"]
    assert (c["env"][0]["name"], ref["name"], ref["key"]) == (
        "SCX_PYLAND_OPTIONS", load("configmap.yaml")["metadata"]["name"], "SCX_PYLAND_OPTIONS")
    build_parser().parse_args(options())          # exits 2 if they do not parse


def test_the_metrics_port_is_declared_annotated_and_served():
    annotations = load("daemonset.yaml")["spec"]["template"]["metadata"]["annotations"]
    port = next(p for p in container()["ports"] if p["name"] == "metrics")["containerPort"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) == port
    assert build_parser().parse_args(options()).metrics[1] == port


def test_the_files_the_supervisor_writes_are_on_writable_volumes():
    assert container()["securityContext"]["readOnlyRootFilesystem"]
    mounts = {m["mountPath"] for m in container()["volumeMounts"]}
    assert {"/run/scx_pyland", "/tmp"} <= mounts

"""The Kubernetes manifests (deploy/k8s, issue 17 item 6), validated offline: nothing is downloaded.

Kubernetes' own kinds are validated against the API schemas the pinned package ``kubernetes-validate`` ships
(Kubernetes 1.30, strict: an unknown field fails); the operators' kinds against ``deploy/k8s/crd-schemas`` (a subset
written by us, see its README) plus the Kubernetes types they embed. Then what no schema says: probes, requests,
a PDB and a ScaledObject per service that match its pods and its queue, Secrets by reference only, one database
user per service, three RabbitMQ nodes and three MongoDB members.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from referencing import Registry, Resource

from servicekit.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30.0"
CRD_SCHEMAS = Path(os.environ.get("IPSFLOW_K8S_CRD_SCHEMAS") or K8S / "crd-schemas")
CRD_KINDS = {"ScaledObject": "scaledobject.json", "TriggerAuthentication": "triggerauthentication.json",
             "RabbitmqCluster": "rabbitmqcluster.json", "MongoDBCommunity": "mongodbcommunity.json"}
CLUSTER_SCOPED = {"Namespace"}
_DEFINITIONS_ID = "https://kubernetes.io/api/_definitions.json"  # the $id of kubernetes-validate's definitions
#: Every service (python -m <module>), its Deployment, and the queue it consumes (None: the console consumes none).
SERVICES = {"intake": "intake", "grants": "grants", "payments": "payments", "notifications": "notifications",
            "process_engine": "process-engine", "console": "console"}
# Secrets the operators create (the rest must be listed in deploy/k8s/README.md for an admin to create).
OPERATOR_SECRETS = re.compile(r"^ipsflow-rabbitmq-default-user$|^ipsflow-mongodb-admin-[a-z-]+$")


def render() -> list[dict[str, Any]]:
    """What ``kubectl kustomize deploy/k8s`` renders, for the features the kustomization uses (and only those)."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    unknown = set(kustomization) - {"apiVersion", "kind", "namespace", "resources", "images"}
    assert not unknown, f"kustomize features this test does not render: {unknown}"
    tags = {i["name"]: i["newTag"] for i in kustomization.get("images", [])}
    docs: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((K8S / name).read_text()):
            if doc is None:
                continue
            if doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = kustomization["namespace"]
            for container in _containers(doc):
                if container.get("image") in tags:
                    container["image"] = f"{container['image']}:{tags[container['image']]}"
            docs.append(doc)
    return docs


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    if doc["kind"] != "Deployment":
        return []
    return list(doc["spec"]["template"]["spec"]["containers"])


def _draft() -> Any:
    from referencing.jsonschema import DRAFT202012

    return DRAFT202012


def _validate_embedded(value: Any, definition: str) -> None:
    """An embedded Kubernetes type (a pod template inside a custom resource) against the API schema."""
    schema = {"$ref": f"{_DEFINITIONS_ID}#/$defs/{definition}"}
    jsonschema.Draft202012Validator(schema, registry=_embedded_registry()).validate(value)


@cache
def _embedded_registry() -> Registry:
    schemas = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    definitions = json.loads((schemas / f"v{KUBERNETES_VERSION}-local-strict" / "_definitions.json").read_text())
    return Registry().with_resource(_DEFINITIONS_ID, Resource.from_contents(definitions, _draft()))


def validate(doc: dict[str, Any]) -> None:
    """Raises on a manifest that does not fit its schema."""
    kind = doc["kind"]
    if kind in CRD_KINDS:
        schema = json.loads((CRD_SCHEMAS / CRD_KINDS[kind]).read_text())
        jsonschema.Draft202012Validator(schema).validate(doc)
        spec = doc["spec"]
        if kind == "RabbitmqCluster":
            _validate_embedded(spec.get("resources", {}), "io.k8s.api.core.v1.ResourceRequirements")
            _validate_embedded(spec.get("affinity", {}), "io.k8s.api.core.v1.Affinity")
        if kind == "MongoDBCommunity":
            stateful = spec.get("statefulSet", {}).get("spec", {})
            _validate_embedded(stateful.get("template", {}), "io.k8s.api.core.v1.PodTemplateSpec")
            for claim in stateful.get("volumeClaimTemplates", []):
                _validate_embedded(claim, "io.k8s.api.core.v1.PersistentVolumeClaim")
        return
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return render()


def _by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_every_file_is_in_the_kustomization_and_every_manifest_fits_its_schema(docs) -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    for doc in docs:
        validate(doc)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "PodDisruptionBudget", "ScaledObject", "RabbitmqCluster",
            "MongoDBCommunity", "ConfigMap", "Namespace", "TriggerAuthentication"} <= kinds
    assert "Secret" not in kinds, "Secrets are referenced, never in the manifests"


@pytest.mark.parametrize("breakage", [
    ("Deployment", lambda d: d["spec"].__setitem__("replicas", "two")),
    ("Deployment", lambda d: d["spec"]["template"]["spec"]["containers"][0].__setitem__("livenesProbe", {})),
    ("PodDisruptionBudget", lambda d: d["spec"].__setitem__("minAvailible", 1)),
    ("ScaledObject", lambda d: d["spec"].__setitem__("maxReplicas", 3)),
    ("ScaledObject", lambda d: d["spec"]["triggers"][0]["metadata"].__setitem__("mode", "Depth")),
    ("RabbitmqCluster", lambda d: d["spec"]["resources"].__setitem__("request", {})),
    ("MongoDBCommunity", lambda d: d["spec"].__setitem__("type", "Sharded")),
    ("MongoDBCommunity", lambda d: d["spec"]["statefulSet"]["spec"]["template"]["spec"]["containers"][0]
     .__setitem__("resource", {})),
], ids=lambda b: b[0])
def test_the_validation_catches_a_broken_manifest(docs, breakage) -> None:
    kind, breakit = breakage
    doc = copy.deepcopy(next(d for d in docs if d["kind"] == kind))
    breakit(doc)
    with pytest.raises(jsonschema.ValidationError):
        validate(doc)


def test_every_service_has_probes_requests_a_pdb_and_scales_on_its_queue(docs) -> None:
    deployments = _by_kind(docs, "Deployment")
    pdbs = list(_by_kind(docs, "PodDisruptionBudget").values())
    scaled = {s["spec"]["scaleTargetRef"]["name"]: s for s in _by_kind(docs, "ScaledObject").values()}
    auths = _by_kind(docs, "TriggerAuthentication")
    services = _by_kind(docs, "Service")
    assert set(deployments) == set(SERVICES.values())
    for module, name in SERVICES.items():
        deployment = deployments[name]
        pod = deployment["spec"]["template"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        (container,) = pod["spec"]["containers"]
        assert container["command"] == ["python", "-m", module]
        assert container["image"].startswith("ipsflow:")
        assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
        assert container["livenessProbe"]["httpGet"]["path"] == "/health"
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]) and container["resources"]["limits"]
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        assert pod["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
        port = container["ports"][0]["containerPort"]
        env = {e["name"]: e for e in container["env"]}
        assert env["IPSFLOW_HTTP_PORT"]["value"] == str(port)
        assert services[name]["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
        assert any(p["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items() for p in pdbs), \
            f"no PodDisruptionBudget selects {name}"
        queue = getattr(importlib.import_module(f"{module}.bootstrap"), "QUEUE", None)
        if queue is None:
            assert name not in scaled
            continue
        trigger = scaled[name]["spec"]["triggers"][0]
        assert trigger["type"] == "rabbitmq" and trigger["metadata"]["queueName"] == queue
        assert trigger["authenticationRef"]["name"] in auths
        assert scaled[name]["spec"]["minReplicaCount"] >= 2  # one may be drained (the PDB) and one still consumes


def test_secrets_are_referenced_and_documented_never_inlined(docs) -> None:
    readme = (K8S / "README.md").read_text()
    referenced: set[str] = set()
    for deployment in _by_kind(docs, "Deployment").values():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        defined: set[str] = set()
        for entry in container["env"]:
            for needed in re.findall(r"\$\((\w+)\)", entry.get("value", "")):
                assert needed in defined, f"{entry['name']} uses $({needed}) before it is defined"
            defined.add(entry["name"])
            if re.search(r"PASSWORD|SECRET|KEY|MONGO_URL", entry["name"]):
                assert "value" not in entry, f"{entry['name']} must come from a Secret"
            if "valueFrom" in entry:
                referenced.add(entry["valueFrom"]["secretKeyRef"]["name"])
    for user in _by_kind(docs, "MongoDBCommunity")["ipsflow-mongodb"]["spec"]["users"]:
        referenced.add(user["passwordSecretRef"]["name"])
    for auth in _by_kind(docs, "TriggerAuthentication").values():
        referenced |= {ref["name"] for ref in auth["spec"]["secretTargetRef"]}
    undocumented = [s for s in referenced if not OPERATOR_SECRETS.match(s) and f"`{s}`" not in readme]
    assert not undocumented, f"Secrets to create that deploy/k8s/README.md does not name: {undocumented}"
    for value in _by_kind(docs, "ConfigMap")["ipsflow-config"]["data"].values():
        assert not re.search(r"://[^/@\s]+:[^/@\s]+@", value), "no credentials in the ConfigMap"


def test_three_broker_nodes_three_database_members_and_a_database_user_per_service(docs) -> None:
    assert _by_kind(docs, "RabbitmqCluster")["ipsflow-rabbitmq"]["spec"]["replicas"] == 3
    mongo = _by_kind(docs, "MongoDBCommunity")["ipsflow-mongodb"]["spec"]
    assert mongo["members"] == 3 and mongo["type"] == "ReplicaSet"
    users = {u["name"]: u for u in mongo["users"]}
    config = _by_kind(docs, "ConfigMap")["ipsflow-config"]["data"]
    assert config["IPSFLOW_MONGO_WRITE_CONCERN"] == "majority" and config["IPSFLOW_MONGO_RETRY_WRITES"] == "true"
    for module, name in SERVICES.items():
        (container,) = _by_kind(docs, "Deployment")[name]["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e for e in container["env"]}
        secret = env["IPSFLOW_MONGO_URL"]["valueFrom"]["secretKeyRef"]
        assert secret == {"name": f"ipsflow-mongodb-admin-{name}", "key": "connectionString.standard"}
        # Only its own database (the name servicekit gives it): no service can read another's.
        own = ServiceSettings(service_name=module).database_name()
        assert {r["db"] for r in users[name]["roles"]} == {own}, name

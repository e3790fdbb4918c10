"""The plain manifests in helm-free-deploy/ parse, validate and fit together.

- every YAML and JSON file parses;
- ECS: ``deploy.sh render`` fills every placeholder; the task definition and the
  service pass botocore's parameter validation for RegisterTaskDefinition and
  CreateService, and the sandbox (``SandboxServer``, in-process) accepts both;
  the containers share the git-sync volume the way ecsop expects;
- Kubernetes: the manifests pass ``kubernetes-validate`` (strict, offline
  schemas) when it is installed, and the structural checks below always;
- compose: every file it mounts exists, its build target is a Dockerfile stage.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
import yaml
from botocore.validate import validate_parameters

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "helm-free-deploy"
ECS = DEPLOY / "ecs"
K8S = DEPLOY / "kubernetes"
COMPOSE = DEPLOY / "compose"
SPECS_PATH = "/git/current/specs"
"""Where ecsop reads specs: git-sync's root /git, link ``current``, folder specs/."""

ECS_VALUES = {
    "ACCOUNT_ID": "123456789012",
    "REGION": "us-east-1",
    "CLUSTER": "ops",
    "SUBNET_ID": "subnet-0123456789abcdef0",
    "SECURITY_GROUP_ID": "sg-0123456789abcdef0",
    "ECSOP_IMAGE": "123456789012.dkr.ecr.us-east-1.amazonaws.com/ecsop@sha256:" + "e" * 64,
    "SPECS_REPO": "https://github.com/acme/deploy-specs.git",
    "SPECS_REF": "main",
    "GIT_SECRET_NAME": "ecsop/git",
    "COORDINATION_TABLE": "ecsop-coordination",
}


def _files(*suffixes: str) -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file() and p.suffix in suffixes)


@pytest.mark.parametrize("path", _files(".yaml", ".yml"), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_parses(path: Path) -> None:
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert documents and all(isinstance(d, dict) for d in documents)


@pytest.mark.parametrize("path", _files(".json"), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_json_parses(path: Path) -> None:
    assert isinstance(json.loads(path.read_text()), dict)


# -- ECS ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """``deploy.sh render`` with sample values: {file name: document}."""
    out = tmp_path_factory.mktemp("rendered")
    env = {**os.environ, **ECS_VALUES, "OUT": str(out)}
    subprocess.run(
        ["bash", str(ECS / "deploy.sh"), "render"], env=env, check=True, capture_output=True
    )
    return {p.name: json.loads(p.read_text()) for p in out.glob("*.json")}


def test_deploy_sh_refuses_to_render_with_values_missing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ECS_VALUES} | {"OUT": str(tmp_path)}
    result = subprocess.run(
        ["bash", str(ECS / "deploy.sh"), "render"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "ACCOUNT_ID" in result.stderr


def test_every_ecs_placeholder_is_a_deploy_sh_variable() -> None:
    script = (ECS / "deploy.sh").read_text()
    variables = set(re.search(r"VARIABLES=\(([^)]*)\)", script).group(1).split())  # type: ignore[union-attr]
    for name in ("task-definition.json", "service.json"):
        used = set(re.findall(r"\$\{([A-Z_]+)\}", (ECS / name).read_text()))
        assert used <= variables, f"{name}: {used - variables} not rendered by deploy.sh"
    assert variables == set(ECS_VALUES)


@pytest.mark.parametrize(
    ("name", "operation"),
    [("task-definition.json", "RegisterTaskDefinition"), ("service.json", "CreateService")],
)
def test_ecs_documents_pass_botocore_validation(
    rendered: dict[str, dict[str, Any]], name: str, operation: str
) -> None:
    model = botocore.session.get_session().get_service_model("ecs")
    validate_parameters(rendered[name], model.operation_model(operation).input_shape)


def test_task_definition_and_service_are_accepted_by_the_sandbox(
    rendered: dict[str, dict[str, Any]],
) -> None:
    pytest.importorskip("moto")
    from ecsop.sandbox.scenario import ClusterSpec, Scenario
    from ecsop.sandbox.server import SandboxServer

    with SandboxServer(Scenario(clusters={"ops": ClusterSpec()})) as server:
        ecs = boto3.client(
            "ecs",
            endpoint_url=server.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        registered = ecs.register_task_definition(**rendered["task-definition.json"])
        containers = {c["name"]: c for c in registered["taskDefinition"]["containerDefinitions"]}
        assert set(containers) == {"volume-owner", "git-sync-init", "git-sync", "ecsop"}
        assert containers["ecsop"]["readonlyRootFilesystem"] is True
        service = ecs.create_service(**rendered["service.json"])["service"]
        assert service["taskDefinition"] == registered["taskDefinition"]["taskDefinitionArn"]


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("environment", [])}


def test_task_definition_wires_git_sync_to_ecsop() -> None:
    document = json.loads((ECS / "task-definition.json").read_text())
    assert document["requiresCompatibilities"] == ["FARGATE"]
    containers = {c["name"]: c for c in document["containerDefinitions"]}
    ecsop, sync, init = containers["ecsop"], containers["git-sync"], containers["git-sync-init"]
    for container in containers.values():
        assert container["readonlyRootFilesystem"] is True, container["name"]
        assert container["logConfiguration"]["logDriver"] == "awslogs", container["name"]
    for gitsync in (sync, init):
        assert gitsync["image"].startswith("registry.k8s.io/git-sync/git-sync:v4.")
        env = _env(gitsync)
        assert f"{env['GITSYNC_ROOT']}/{env['GITSYNC_LINK']}/specs" == SPECS_PATH
        assert {"sourceVolume": "git", "containerPath": "/git"} in gitsync["mountPoints"]
    assert _env(init)["GITSYNC_ONE_TIME"] == "true" and init["essential"] is False
    assert _env(ecsop)["ECSOP_SPECS"] == SPECS_PATH
    assert {"sourceVolume": "git", "containerPath": "/git", "readOnly": True} in ecsop[
        "mountPoints"
    ]
    # ecsop exits when --specs is missing, so it starts after the first clone.
    assert {"containerName": "git-sync-init", "condition": "SUCCESS"} in ecsop["dependsOn"]
    port = int(_env(ecsop)["ECSOP_METRICS_PORT"])
    assert [m["containerPort"] for m in ecsop["portMappings"]] == [port]
    check = " ".join(ecsop["healthCheck"]["command"])
    assert f"127.0.0.1:{port}/healthz" in check and check.startswith("CMD python")
    assert document["taskRoleArn"].endswith(":role/ecsop")


def test_service_runs_two_coordinated_replicas() -> None:
    service = json.loads((ECS / "service.json").read_text())
    assert service["desiredCount"] == 2
    # A rolling update adds the new tasks before stopping the old: never fewer than 2.
    assert service["deploymentConfiguration"]["minimumHealthyPercent"] == 100
    task = json.loads((ECS / "task-definition.json").read_text())
    ecsop = next(c for c in task["containerDefinitions"] if c["name"] == "ecsop")
    env = {e["name"]: e["value"] for e in ecsop["environment"]}
    assert env["ECSOP_COORDINATION"] == "dynamodb:${COORDINATION_TABLE}"
    assert int(env["ECSOP_SHARDS"]) >= service["desiredCount"]


# -- Kubernetes ---------------------------------------------------------------------


def _k8s_documents() -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        out.extend((path.name, d) for d in yaml.safe_load_all(path.read_text()) if d)
    return out


def _kind(kind: str) -> dict[str, Any]:
    return next(d for _, d in _k8s_documents() if d["kind"] == kind)


@pytest.mark.parametrize(
    "document", [d for _, d in _k8s_documents()], ids=[n for n, _ in _k8s_documents()]
)
def test_kubernetes_schema(document: dict[str, Any]) -> None:
    validator = pytest.importorskip(
        "kubernetes_validate", reason="pip install kubernetes-validate for the schema check"
    )
    validator.validate(document, validator.latest_version(), strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests
    assert kustomization["namespace"] == _kind("Namespace")["metadata"]["name"]
    image = _container(_kind("Deployment"), "ecsop")["image"]
    name, _, digest = image.partition("@")
    assert [(i["name"], i["digest"]) for i in kustomization["images"]] == [(name, digest)]


def _container(deployment: dict[str, Any], name: str, init: bool = False) -> dict[str, Any]:
    spec = deployment["spec"]["template"]["spec"]
    return next(c for c in spec["initContainers" if init else "containers"] if c["name"] == name)


def _arg(container: dict[str, Any], flag: str) -> str:
    args: list[str] = container["args"]
    return next(a.split("=", 1)[1] for a in args if a.startswith(f"{flag}="))


def test_deployment_is_locked_down_and_probed() -> None:
    deployment = _kind("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == _kind("ServiceAccount")["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    for container in pod["containers"] + pod["initContainers"]:
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True, container["name"]
        assert context["allowPrivilegeEscalation"] is False, container["name"]
        assert context["capabilities"]["drop"] == ["ALL"], container["name"]
        assert context["runAsUser"] != 0, container["name"]
        assert container["resources"]["requests"] and container["resources"]["limits"]
    ecsop = _container(deployment, "ecsop")
    ports = {p["name"]: p["containerPort"] for p in ecsop["ports"]}
    env = {e["name"]: e.get("value") for e in ecsop["env"]}
    assert ports["metrics"] == int(env["ECSOP_METRICS_PORT"]) == 9100
    assert ecsop["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert ecsop["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert ecsop["securityContext"]["runAsUser"] == 10001  # the Dockerfile's USER


def test_two_replicas_coordinated_spread_and_disruption_budgeted() -> None:
    deployment = _kind("Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    labels = spec["template"]["metadata"]["labels"]
    spread = spec["template"]["spec"]["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {
        "topology.kubernetes.io/zone",
        "kubernetes.io/hostname",
    }
    assert all(c["labelSelector"]["matchLabels"].items() <= labels.items() for c in spread)
    budget = _kind("PodDisruptionBudget")["spec"]
    assert budget["minAvailable"] == 1 < spec["replicas"]
    assert budget["selector"]["matchLabels"].items() <= labels.items()
    env = {e["name"]: e for e in _container(deployment, "ecsop")["env"]}
    assert env["ECSOP_COORDINATION"]["value"].startswith("dynamodb:")
    assert int(env["ECSOP_SHARDS"]["value"]) >= spec["replicas"]
    assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert env["ECSOP_ADVERTISE_URL"]["value"] == "http://$(POD_IP):9100"


def test_git_sync_publishes_where_ecsop_reads() -> None:
    deployment = _kind("Deployment")
    ecsop = _container(deployment, "ecsop")
    env = {e["name"]: e.get("value") for e in ecsop["env"]}
    assert env["ECSOP_SPECS"] == SPECS_PATH
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes["git"]
    assert {"name": "git", "mountPath": "/git", "readOnly": True} in ecsop["volumeMounts"]
    for sync in (_container(deployment, "git-sync"), _container(deployment, "git-sync-init", True)):
        assert sync["image"].startswith("registry.k8s.io/git-sync/git-sync:v4.")
        assert f"{_arg(sync, '--root')}/{_arg(sync, '--link')}/specs" == SPECS_PATH
        assert {"name": "git", "mountPath": "/git"} in sync["volumeMounts"]
    assert "--one-time" in _container(deployment, "git-sync-init", True)["args"]


def test_service_account_and_metrics_service() -> None:
    account = _kind("ServiceAccount")["metadata"]["annotations"]
    assert re.fullmatch(r"arn:aws:iam::\d{12}:role/ecsop", account["eks.amazonaws.com/role-arn"])
    service = _kind("Service")
    annotations = service["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert [p["port"] for p in service["spec"]["ports"]] == [int(annotations["prometheus.io/port"])]
    labels = _kind("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


# -- images are pinned by digest ---------------------------------------------------------

DIGEST = re.compile(r"^[a-z0-9.:/_-]+(:[\w.-]+)?@sha256:[0-9a-f]{64}$")


def _images() -> list[tuple[str, str]]:
    """(where, image) of every container image the manifests name."""
    found: list[tuple[str, str]] = []
    for _, document in _k8s_documents():
        pod = document.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("initContainers", []) + pod.get("containers", []):
            found.append((f"kubernetes {container['name']}", container["image"]))
    compose = yaml.safe_load((COMPOSE / "docker-compose.yaml").read_text())
    # ecsop:sandbox is built from this repository, locally, by the service that says so;
    # the services that run the same image use what that build produced.
    built = {s["image"] for s in compose["services"].values() if "build" in s}
    for name, service in compose["services"].items():
        if "build" not in service and service["image"] not in built:
            found.append((f"compose {name}", service["image"]))
    for container in json.loads((ECS / "task-definition.json").read_text())["containerDefinitions"]:
        if container["image"] != "${ECSOP_IMAGE}":  # deploy.sh refuses a tag (below)
            found.append((f"ecs {container['name']}", container["image"]))
    return found


@pytest.mark.parametrize(("where", "image"), _images(), ids=[w for w, _ in _images()])
def test_every_image_is_pinned_by_digest(where: str, image: str) -> None:
    assert DIGEST.match(image), f"{where}: {image} can move; pin it as name:tag@sha256:<digest>"


def test_the_ecsop_image_is_a_digest_placeholder_not_a_tag() -> None:
    image = _container(_kind("Deployment"), "ecsop")["image"]
    assert image.endswith("@sha256:" + "0" * 64), "users put the digest of the image they built"
    above = (K8S / "deployment.yaml").read_text().split(image)[0].splitlines()[-3:]
    assert any("<-" in line for line in above), "the comment above says to put the digest"


def test_deploy_sh_refuses_an_ecsop_image_pinned_by_tag(tmp_path: Path) -> None:
    tagged = {**ECS_VALUES, "ECSOP_IMAGE": "123456789012.dkr.ecr.us-east-1.amazonaws.com/ecsop:0.1"}
    result = subprocess.run(
        ["bash", str(ECS / "deploy.sh"), "render"],
        env={**os.environ, **tagged, "OUT": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "pin ECSOP_IMAGE by digest" in result.stderr


# -- compose ------------------------------------------------------------------------


def _defaults(text: str) -> str:
    """``${VAR:-default}`` replaced by its default, as compose does with VAR unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", text)


def _host_path(source: str) -> Path | None:
    """A bind mount's host path; None for a named volume."""
    if not source.startswith((".", "/")):
        return None
    return (COMPOSE / source).resolve()


def test_compose_references_files_that_exist() -> None:
    compose = yaml.safe_load((COMPOSE / "docker-compose.yaml").read_text())
    named = set(compose.get("volumes", {}))
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = _defaults(volume).split(":", 1)[0]
            path = _host_path(source)
            if path is None:
                assert source in named, f"{name}: volume {source} is not declared"
            else:
                assert path.exists(), f"{name}: {source} -> {path} does not exist"
        for dependency in service.get("depends_on", []):
            assert dependency in compose["services"], f"{name}: depends on {dependency}"
    build = compose["services"]["sandbox"]["build"]
    dockerfile = (COMPOSE / build["context"] / build["dockerfile"]).resolve()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", dockerfile.read_text(), re.M | re.I)
    assert build["target"] in stages


def test_compose_prometheus_loads_the_shipped_rules_and_scrapes_ecsop() -> None:
    compose = yaml.safe_load((COMPOSE / "docker-compose.yaml").read_text())
    mounts = dict(v.split(":")[:2] for v in compose["services"]["prometheus"]["volumes"])
    config = yaml.safe_load((COMPOSE / "prometheus.yml").read_text())
    for rule_file in config["rule_files"]:
        source = next(host for host, inside in mounts.items() if inside == rule_file)
        assert _host_path(source) == (DEPLOY / "prometheus" / "alerts.yaml").resolve()
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "ecsop"  # the shipped alerts match on job="ecsop"
    replicas = {n: s for n, s in compose["services"].items() if n.startswith("ecsop-")}
    assert len(replicas) == 2
    ports = sorted(int(s["environment"]["ECSOP_METRICS_PORT"]) for s in replicas.values())
    assert job["static_configs"][0]["targets"] == [f"sandbox:{port}" for port in ports]
    published = [p.split(":")[0] for p in compose["services"]["sandbox"]["ports"]]
    assert published == [str(port) for port in ports]
    for service in replicas.values():
        command = service["command"]
        assert command[command.index("--specs") + 1] == SPECS_PATH
        assert service["network_mode"] == "service:sandbox"
        env = service["environment"]
        assert env["ECSOP_COORDINATION"] == "dynamodb:ecsop-trial"
        assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"
    table = compose["services"]["coordination-table"]
    assert table["command"] == ["ecsop-trial"]

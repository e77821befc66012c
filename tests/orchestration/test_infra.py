"""infra/: the base job templates are valid for their pool types, the compose file parses, and the
image's command and copied paths exist in the project (Docker itself is not available here)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from deployments import DEFAULT_POOL, PROJECT_DIR

INFRA = PROJECT_DIR / "infra"
PLACEHOLDER = re.compile(r"{{\s*([\w]+)\s*}}")


def prefect_default_template(pool_type: str) -> dict:
    """What `prefect work-pool get-default-base-job-template --type <t>` prints, read offline from
    the worker metadata Prefect ships (the CLI reads the same data through the API)."""
    import prefect.server.api as server_api

    path = (
        Path(server_api.__file__).parent
        / "collections_data"
        / "views"
        / "aggregate-worker-metadata.json"
    )
    for collection in json.loads(path.read_text()).values():
        for worker in collection.values():
            if worker.get("type") == pool_type:
                return worker["default_base_job_configuration"]
    raise AssertionError(f"no {pool_type} worker in Prefect's metadata")


def _placeholders(value: object) -> set[str]:
    found: set[str] = set()
    if isinstance(value, str):
        found.update(PLACEHOLDER.findall(value))
    elif isinstance(value, dict):
        for v in value.values():
            found |= _placeholders(v)
    elif isinstance(value, list):
        for v in value:
            found |= _placeholders(v)
    return found


@pytest.mark.parametrize(
    ("pool_type", "filename"), [("docker", "docker-pool.json"), ("kubernetes", "k8s-pool.json")]
)
def test_base_job_template_fits_its_pool_type(pool_type: str, filename: str) -> None:
    ours = json.loads((INFRA / filename).read_text())
    default = prefect_default_template(pool_type)
    assert set(ours) == {"job_configuration", "variables"}
    assert set(ours["job_configuration"]) == set(default["job_configuration"])
    assert set(ours["variables"]["properties"]) == set(default["variables"]["properties"])
    declared = set(ours["variables"]["properties"])
    assert _placeholders(ours["job_configuration"]) <= declared
    # every default we set has the type its variable declares
    for name, prop in ours["variables"]["properties"].items():
        if "default" in prop and prop.get("type"):
            expected = {
                "string": str,
                "object": dict,
                "array": list,
                "boolean": bool,
                "integer": int,
            }
            kind = expected.get(prop["type"])
            if kind is not None and prop["default"] is not None:
                assert isinstance(prop["default"], kind), name
    assert ours["variables"]["properties"]["image"]["default"] == "searchflow:latest"


def test_k8s_template_mounts_the_data_volume() -> None:
    ours = json.loads((INFRA / "k8s-pool.json").read_text())
    spec = ours["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["volumeMounts"][0]["mountPath"] == "/data"
    assert spec["volumes"][0]["name"] == container["volumeMounts"][0]["name"]


def test_compose_file_parses_and_wires_the_services() -> None:
    compose = yaml.safe_load((INFRA / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "prefect-server", "worker"} <= set(services)
    assert (
        "postgresql+asyncpg://"
        in services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    )
    worker = services["worker"]
    assert worker["build"]["dockerfile"] == "infra/Dockerfile"
    assert (INFRA / worker["build"]["context"] / worker["build"]["dockerfile"]).resolve().is_file()
    command = worker["command"]
    assert command[:3] == ["prefect", "worker", "start"]
    assert command[command.index("--pool") + 1] == DEFAULT_POOL
    env = worker["environment"]
    assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert env["SEARCHFLOW_PROJECT_DIR"] == "/opt/searchflow"
    for mount in services["postgres"]["volumes"]:
        source = mount.split(":")[0]
        if source.startswith("./"):
            assert (INFRA / source).is_file()


def test_dockerfile_copies_existing_paths_and_runs_an_existing_command() -> None:
    lines = [
        line.strip()
        for line in (INFRA / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    copies = [shlex.split(line)[1:-1] for line in lines if line.startswith("COPY")]
    for sources in copies:
        for source in sources:
            assert (PROJECT_DIR / source).exists(), source
    (cmd,) = [
        json.loads(line.removeprefix("CMD").strip()) for line in lines if line.startswith("CMD")
    ]
    assert cmd[:3] == ["prefect", "worker", "start"]
    assert cmd[cmd.index("--pool") + 1] == DEFAULT_POOL
    assert any("SEARCHFLOW_PROJECT_DIR=/opt/searchflow" in line for line in lines)
    assert any(line.startswith("WORKDIR /opt/searchflow") for line in lines)

"""``export --format k8s --workload worker``: a Deployment of workers per fleet, the
database URL from a Secret, valid under ``kubernetes-validate --strict``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dalfleet.errors import InvalidArgumentError
from dalfleet.export import DEFAULT_URL_SECRET, export_documents, export_yaml
from dalfleet.models import Fleet
from tests.test_export import HOSTILE, awkward_fleets, k8s_validate

HANDLER = "myapp.tasks:handle"


def _container(doc: dict[str, object]) -> dict[str, object]:
    spec = doc["spec"]
    assert isinstance(spec, dict)
    (container,) = spec["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


def test_one_deployment_per_fleet_running_the_worker() -> None:
    fleet = Fleet("workers", member_ids=["a", "b"], last_deployed_task="Process logs")
    (doc,) = export_documents([fleet], "k8s", workload="worker", handler=HANDLER, replicas=3)
    assert doc["apiVersion"] == "apps/v1" and doc["kind"] == "Deployment"
    assert doc["metadata"]["name"] == "workers-worker"
    assert doc["spec"]["replicas"] == 3
    selector = doc["spec"]["selector"]["matchLabels"]
    assert selector.items() <= doc["spec"]["template"]["metadata"]["labels"].items()
    container = _container(doc)
    assert container["command"] == ["dalfleet"]
    assert container["args"] == ["worker", "workers", "--handler", HANDLER]
    env = {e["name"]: e for e in container["env"]}  # type: ignore[union-attr]
    assert env["DALFLEET_URL"] == {
        "name": "DALFLEET_URL",
        "valueFrom": {"secretKeyRef": {"name": DEFAULT_URL_SECRET, "key": "url"}},
    }
    assert env["DAL_TASK"]["value"] == "Process logs"
    k8s_validate([doc])


def test_every_awkward_fleet_gives_a_valid_distinct_deployment() -> None:
    fleets = awkward_fleets()
    docs = export_documents(
        fleets, "k8s", workload="worker", handler=HANDLER, url_secret="db.prod", namespace="ml"
    )
    assert len(docs) == len(fleets)
    names = [d["metadata"]["name"] for d in docs]
    assert len(set(names)) == len(names)
    assert all(len(n) <= 63 for n in names)
    for doc, fleet in zip(docs, fleets, strict=True):
        args = _container(doc)["args"]
        assert isinstance(args, list)
        # The fleet name is one argument; Kubernetes' $(VAR) expansion gives it back.
        assert args[1].replace("$$", "$") == fleet.name or args[1] == fleet.name
    k8s_validate(docs)


@pytest.mark.parametrize("task", HOSTILE[:12])
def test_hostile_tasks_stay_values(task: str) -> None:
    fleet = Fleet("w", member_ids=["a"], last_deployed_task=task)
    text = export_yaml([fleet], "k8s", workload="worker", handler=HANDLER)
    (doc,) = list(yaml.safe_load_all(text))
    env = {e["name"]: e.get("value") for e in _container(doc)["env"]}  # type: ignore[union-attr]
    assert env["DAL_TASK"] in (task, task.replace("$", "$$"))
    k8s_validate([doc])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "needs a handler"),
        ({"handler": "not a handler"}, "MODULE:FUNCTION"),
        ({"handler": "os:system; rm -rf /"}, "MODULE:FUNCTION"),
        ({"handler": HANDLER, "url_secret": "Bad_Secret"}, "secret name"),
        ({"handler": HANDLER, "replicas": -1}, "replicas"),
    ],
)
def test_bad_worker_options_are_one_clear_error(options: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        export_documents([Fleet("w")], "k8s", workload="worker", **options)  # type: ignore[arg-type]


@pytest.mark.slow
def test_the_cli_output_passes_kubernetes_validate_strict(tmp_path: Path) -> None:
    pytest.importorskip("kubernetes_validate", reason="needs the validators extra")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dalfleet", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert cli("create", "workers").returncode == 0
    out = tmp_path / "worker.yaml"
    done = cli("export", "workers", "--workload", "worker", "--handler", HANDLER, "-o", str(out))
    assert done.returncode == 0, done.stderr
    checked = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    missing = cli("export", "workers", "--workload", "worker")
    assert missing.returncode == 1 and "needs a handler" in missing.stderr

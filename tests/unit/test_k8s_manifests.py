"""The Kubernetes manifests validate without a cluster, and the validator catches what would
make `kubectl apply` fail or leave a resource out."""

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.k8s_validate import MANIFESTS, validate_tree


def test_the_manifests_in_the_repo_are_valid() -> None:
    assert validate_tree(MANIFESTS) == []


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    copy = tmp_path / "k8s"
    shutil.copytree(MANIFESTS, copy)
    return copy


def edit(path: Path, index: int, change: Callable[[dict[str, Any]], object]) -> None:
    documents = list(yaml.safe_load_all(path.read_text()))
    change(documents[index])
    path.write_text(yaml.safe_dump_all(documents))


def test_a_wrong_type_in_a_core_kind_is_reported(tree: Path) -> None:
    edit(tree / "base" / "api.yaml", 0, lambda d: d["spec"].update(replicas="two"))
    problems = validate_tree(tree)
    assert len(problems) == 1 and problems[0].startswith("base/api.yaml#0: spec/replicas")


def test_a_misspelt_field_is_reported(tree: Path) -> None:
    def typo(deployment: dict[str, Any]) -> None:
        deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"

    edit(tree / "base" / "worker.yaml", 0, typo)
    assert any("imagePullPolcy" in p for p in validate_tree(tree))


def test_operator_kinds_are_checked_against_their_schemas(tree: Path) -> None:
    edit(tree / "base" / "worker-autoscaling.yaml", 0, lambda d: d["spec"].pop("scaleTargetRef"))
    edit(tree / "dependencies" / "rabbitmq.yaml", 0, lambda d: d["spec"].update(replicas=0))
    problems = validate_tree(tree)
    assert any("worker-autoscaling.yaml#0" in p and "scaleTargetRef" in p for p in problems)
    assert any("rabbitmq.yaml#0: spec/replicas" in p for p in problems)


def test_files_left_out_of_or_missing_from_a_kustomization_are_reported(tree: Path) -> None:
    (tree / "base" / "extra.yaml").write_text((tree / "base" / "namespace.yaml").read_text())
    (tree / "dependencies" / "milvus.yaml").unlink()
    problems = validate_tree(tree)
    assert "base/extra.yaml: not named by any kustomization.yaml" in problems
    assert "dependencies/kustomization.yaml: milvus.yaml does not exist" in problems


def _consumed(commands: list[list[str]]) -> set[str]:
    """The queues the Celery workers among `commands` consume (`-Q a,b`)."""
    queues: set[str] = set()
    for command in commands:
        if "worker" in command and "-Q" in command:
            queues.update(command[command.index("-Q") + 1].split(","))
    return queues


def test_every_task_queue_has_a_consumer_in_compose_and_in_kubernetes() -> None:
    """A queue nothing consumes holds its tasks forever (on Kubernetes, retrains and webhook
    deliveries once had no worker)."""
    from shared.messaging import task_queues
    from shared.settings import Settings

    wanted = {queue.name for queue in task_queues(Settings())}
    compose = yaml.safe_load((MANIFESTS.parents[1] / "docker-compose.yml").read_text())
    in_compose = [s["command"] for s in compose["services"].values() if "command" in s]
    in_k8s = [
        container["command"]
        for path in (MANIFESTS / "base").glob("*.yaml")
        for document in yaml.safe_load_all(path.read_text())
        if document and document.get("kind") == "Deployment"
        for container in document["spec"]["template"]["spec"]["containers"]
        if "command" in container
    ]
    assert wanted - _consumed(in_compose) == set()
    assert wanted - _consumed(in_k8s) == set()

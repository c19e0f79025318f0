"""Validate the Kubernetes manifests without a cluster.

Core kinds are checked by kubernetes-validate against the Kubernetes API schemas (strict: an
unknown field is an error); operator kinds (KEDA, RabbitMQ, CloudNativePG, Milvus) against the
subset schemas in k8s_schemas/; every kustomization must name files that exist, and every manifest
must be named by a kustomization (a forgotten file would never be applied).

python -m devstack.k8s_validate [DIR]     # default: infra/k8s; exit 1 on the first report of errors
"""

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

SCHEMAS = Path(__file__).resolve().parent / "k8s_schemas"
MANIFESTS = Path(__file__).resolve().parents[1] / "infra" / "k8s"
KUBERNETES_VERSION = "1.31.0"
CUSTOM_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda-scaledobject.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda-triggerauthentication.json",
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"): "rabbitmq-cluster.json",
    ("postgresql.cnpg.io/v1", "Cluster"): "cnpg-cluster.json",
    ("milvus.io/v1beta1", "Milvus"): "milvus.json",
}


def _schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / name).read_text())


def _documents(path: Path) -> Iterator[tuple[int, Any]]:
    for index, document in enumerate(yaml.safe_load_all(path.read_text())):
        if document is not None:
            yield index, document


def _json_errors(schema: dict[str, Any], document: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(top)'}: {error.message}"
        for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    ]


def validate_manifest(document: Any) -> list[str]:
    if not isinstance(document, dict) or "kind" not in document or "apiVersion" not in document:
        return ["not a Kubernetes object (apiVersion and kind are required)"]
    custom = CUSTOM_KINDS.get((document["apiVersion"], document["kind"]))
    if custom is not None:
        return _json_errors(_schema(custom), document)
    try:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        where = "/".join(str(p) for p in error.path) or "(top)"
        return [f"{where}: {error.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        return [f"unknown kind {document['apiVersion']} {document['kind']}"]
    return []


def _patch_target(document: Any) -> tuple[str, str] | None:
    if isinstance(document, dict) and document.get("kind") and document.get("metadata"):
        return document["kind"], document["metadata"].get("name", "")
    return None


def validate_tree(root: Path) -> list[str]:
    problems: list[str] = []
    kustomizations = sorted(root.rglob("kustomization.yaml"))
    named: set[Path] = set()
    patches: set[Path] = set()
    for kustomization in kustomizations:
        content = yaml.safe_load(kustomization.read_text())
        for problem in _json_errors(_schema("kustomization.json"), content):
            problems.append(f"{kustomization.relative_to(root)}: {problem}")
        for resource in content.get("resources", []):
            target = (kustomization.parent / resource).resolve()
            if target.is_dir():
                if not (target / "kustomization.yaml").exists():
                    problems.append(
                        f"{kustomization.relative_to(root)}: {resource} has no kustomization"
                    )
            elif not target.is_file():
                problems.append(f"{kustomization.relative_to(root)}: {resource} does not exist")
            named.add(target)
        for patch in content.get("patches", []):
            if "path" in patch:
                target = (kustomization.parent / patch["path"]).resolve()
                if not target.is_file():
                    problems.append(
                        f"{kustomization.relative_to(root)}: {patch['path']} does not exist"
                    )
                patches.add(target)

    resources: set[tuple[str, str]] = set()
    manifests = [
        p
        for p in sorted(root.rglob("*.yaml"))
        if p.name != "kustomization.yaml" and "schemas" not in p.parts
    ]
    for path in manifests:
        label = str(path.relative_to(root))
        if path.resolve() not in named | patches:
            problems.append(f"{label}: not named by any kustomization.yaml")
        try:
            documents = list(_documents(path))
        except yaml.YAMLError as error:
            problems.append(f"{label}: not YAML: {error}")
            continue
        if path.resolve() in patches:
            continue  # partial by nature: checked against its target below
        for index, document in documents:
            problems.extend(
                f"{label}#{index}: {problem}" for problem in validate_manifest(document)
            )
            target = _patch_target(document)
            if target:
                resources.add(target)
    for path in sorted(patches):
        for index, document in _documents(path):
            target = _patch_target(document)
            if target not in resources:
                problems.append(
                    f"{path.relative_to(root)}#{index}: patches {target}, which no manifest defines"
                )
    return problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else MANIFESTS
    problems = validate_tree(root)
    for problem in problems:
        print(f"invalid: {problem}", file=sys.stderr)
    if problems:
        return 1
    count = sum(1 for _ in root.rglob("*.yaml"))
    print(f"ok: {count} files under {root} (Kubernetes {KUBERNETES_VERSION} schemas, CRD subsets)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

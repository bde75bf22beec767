"""Kubernetes: one ``Indexed`` batch/v1 Job per image flavour, printed as YAML for ``kubectl``.

Each Job indexes the items of its flavour (``run … --flavour F``): completion index k runs the
k-th such item of the plan, read from ``JOB_COMPLETION_INDEX`` by ``mnist-suite run``. Every pod
rebuilds the plan from the same arguments and refuses to run (exit 2) if its fingerprint differs
from the one written here, so an image whose jobs expand differently cannot run the wrong item.
With ``--plan FILE`` the saved plan travels in a ConfigMap instead.

Exit 2 (bad config or data) fails the index without a retry; a pod disrupted by the cluster
(eviction, preemption, node drain) is retried without counting against ``backoffLimitPerIndex``.
``backoffLimitPerIndex`` and ``podFailurePolicy`` with ``FailIndex`` need Kubernetes >= 1.29
(beta, on by default; stable in 1.33).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from mnist_suite import limits
from mnist_suite.claims import STALE_SECONDS
from mnist_suite.config import config_hash
from mnist_suite.errors import ConfigError
from mnist_suite.launch import thread_env
from mnist_suite.launch.container import CONTAINER_UID
from mnist_suite.plan import FLAVOURS, WorkItem, array_spec, fingerprint, plan_document

RUNS_MOUNT = "/runs"
DATA_MOUNT = "/data"
PLAN_MOUNT = "/plan"
CONTAINER = "run"
EXIT_USAGE = 2
MIN_KUBERNETES = "1.29"
# A Job's name is NAME-PLAN-FLAVOUR[-ITEMS]: 8 + 1 + 3 + 1 + 8 + 3 separators and the flavour
# leave 38 characters of the 63 a label value may have, so no name is ever cut short.
MAX_NAME = 38
MAX_BACKOFF = 1000


@dataclass(frozen=True)
class KubernetesOptions:
    image_registry: str = ""  # e.g. "registry.example.com/team"; empty: local names
    image_tag: str = ""  # appended to the flavour: mnist-suite:numpy<tag>
    parallelism: int = 2
    backoff_limit_per_index: int = 2
    runs_claim: str = "mnist-suite-runs"  # ReadWriteMany PVC shared by every pod
    data_claim: str = "mnist-suite-data"  # PVC holding the verified mnist.npz
    data_file: str = "mnist.npz"
    namespace: str | None = None
    name: str = "mnist-suite"
    cpu: str = "1"
    memory: str = "4Gi"
    run_as_user: int = CONTAINER_UID  # the images' numeric non-root USER


def image_for(flavour: str, options: KubernetesOptions) -> str:
    name = f"mnist-suite:{flavour}{options.image_tag}"
    return f"{options.image_registry.rstrip('/')}/{name}" if options.image_registry else name


def check_options(options: KubernetesOptions) -> None:
    """Refuse options the API server would reject or that would name two Jobs alike."""
    name = limits.dns_label(options.name, "--name")
    if len(name) > MAX_NAME:
        raise ConfigError(f"--name {name}: at most {MAX_NAME} characters")
    if options.namespace is not None:
        limits.dns_label(options.namespace, "--namespace")
    limits.int_range(options.parallelism, "--parallelism", 1, limits.MAX_PARALLELISM)
    limits.int_range(options.backoff_limit_per_index, "--backoff-limit-per-index", 0, MAX_BACKOFF)
    limits.int_range(options.run_as_user, "--run-as-user", 1, 2**31 - 1)
    limits.dns_subdomain(options.runs_claim, "--runs-claim")
    limits.dns_subdomain(options.data_claim, "--data-claim")
    limits.file_name(options.data_file, "--data-file")
    limits.quantity(options.cpu, "--cpu", cpu=True)
    limits.quantity(options.memory, "--memory")
    limits.image_registry(options.image_registry)
    limits.image_tag(options.image_tag)


def _dns_name(*parts: str) -> str:
    """A DNS-1123 label of checked parts (Job names become pod label values: <= 63 characters)."""
    name = "-".join(parts)
    if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", name):
        raise ConfigError(f"{name!r}: not an RFC 1123 name of at most 63 characters")
    return name


def _threads(cpu: str) -> int:
    """Whole CPUs in a Kubernetes quantity ("2", "1.5", "500m"), at least one."""
    millis = float(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)
    return max(1, int(millis))


def job_manifest(
    items: list[WorkItem],
    flavour: str,
    chosen: list[WorkItem],
    run_args: list[str],
    options: KubernetesOptions,
    plan_config_map: str | None = None,
) -> dict[str, Any]:
    """The Indexed Job that runs ``chosen`` (the items of one flavour), one pod per item."""
    plan_id = fingerprint(items)
    labels = {
        "app.kubernetes.io/name": "mnist-suite",
        "mnist-suite/plan": plan_id,
        "mnist-suite/flavour": flavour,
    }
    env = {
        "MNIST_SUITE_DATA": f"{DATA_MOUNT}/{options.data_file}",
        "MNIST_SUITE_OFFLINE": "1",
        "MNIST_SUITE_RUNS": RUNS_MOUNT,
        # The root filesystem is read-only: caches and config (Keras, Matplotlib) go to /tmp.
        "HOME": "/tmp",
        "MPLCONFIGDIR": "/tmp/matplotlib",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        # A pod retried after its predecessor was killed (OOM, node loss) finds that pod's claim
        # still fresh: it waits until the claim goes stale (no heartbeat for STALE_SECONDS, then
        # broken) instead of failing the retry at once, which would spend backoffLimitPerIndex.
        "MNIST_SUITE_CLAIM_WAIT": str(int(STALE_SECONDS) + 30),
        **thread_env(_threads(options.cpu)),
    }
    mounts = [
        {"name": "runs", "mountPath": RUNS_MOUNT},
        {"name": "data", "mountPath": DATA_MOUNT, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    volumes = [
        {"name": "runs", "persistentVolumeClaim": {"claimName": options.runs_claim}},
        {
            "name": "data",
            "persistentVolumeClaim": {"claimName": options.data_claim, "readOnly": True},
        },
        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
    ]
    if plan_config_map:
        mounts.append({"name": "plan", "mountPath": PLAN_MOUNT, "readOnly": True})
        volumes.append({"name": "plan", "configMap": {"name": plan_config_map}})
    args = ["run", *run_args, "--flavour", flavour]
    name = [options.name, plan_id, flavour]
    if len(chosen) != len([i for i in items if i.flavour == flavour]):
        args += ["--items", array_spec([i.index for i in chosen])]
        # A re-run of some items is a new Job (a Job's pod template cannot be changed).
        name.append(config_hash([i.index for i in chosen]))
    args += ["--plan-fingerprint", plan_id, "--runs", RUNS_MOUNT]
    resources = {"cpu": options.cpu, "memory": options.memory}
    metadata: dict[str, Any] = {
        "name": _dns_name(*name),
        "labels": labels,
        "annotations": {"mnist-suite/items": array_spec([i.index for i in chosen])},
    }
    if options.namespace:
        metadata["namespace"] = options.namespace
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "completionMode": "Indexed",
            "completions": len(chosen),
            "parallelism": min(options.parallelism, len(chosen)),
            "backoffLimitPerIndex": options.backoff_limit_per_index,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailIndex",
                        "onExitCodes": {
                            "containerName": CONTAINER,
                            "operator": "In",
                            "values": [EXIT_USAGE],
                        },
                    },
                    {
                        "action": "Ignore",
                        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                    },
                ]
            },
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": options.run_as_user,
                        "runAsGroup": options.run_as_user,
                        "fsGroup": options.run_as_user,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": CONTAINER,
                            "image": image_for(flavour, options),
                            "imagePullPolicy": "IfNotPresent",
                            "args": args,
                            "env": [{"name": k, "value": v} for k, v in env.items()],
                            "resources": {"requests": resources, "limits": resources},
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "runAsNonRoot": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": mounts,
                        }
                    ],
                    "volumes": volumes,
                },
            },
        },
    }


def plan_config_map(items: list[WorkItem], options: KubernetesOptions) -> dict[str, Any]:
    """The saved plan as a ConfigMap, mounted at /plan/plan.json in every pod."""
    metadata: dict[str, Any] = {
        "name": _dns_name(options.name, "plan", fingerprint(items)),
        "labels": {"app.kubernetes.io/name": "mnist-suite"},
    }
    if options.namespace:
        metadata["namespace"] = options.namespace
    document = json.dumps(plan_document(items), separators=(",", ":"))
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata,
            "data": {"plan.json": document}}  # fmt: skip


def documents(
    items: list[WorkItem],
    chosen: list[WorkItem],
    run_args: list[str],
    options: KubernetesOptions,
) -> list[dict[str, Any]]:
    """Every manifest for ``chosen``: the plan's ConfigMap (with ``--plan``), then the Jobs."""
    check_options(options)
    docs: list[dict[str, Any]] = []
    config_map = None
    if run_args[:1] == ["--plan"]:
        docs.append(plan_config_map(items, options))
        config_map = docs[0]["metadata"]["name"]
        run_args = ["--plan", f"{PLAN_MOUNT}/plan.json"]
    for flavour in FLAVOURS:
        mine = [i for i in chosen if i.flavour == flavour]
        if mine:
            docs.append(job_manifest(items, flavour, mine, run_args, options, config_map))
    return docs


def manifests(
    items: list[WorkItem],
    chosen: list[WorkItem],
    run_args: list[str],
    options: KubernetesOptions,
) -> str:
    """The YAML stream ``kubectl apply -f -`` takes."""
    docs = documents(items, chosen, run_args, options)
    head = (
        f"# mnist-suite plan {fingerprint(items)}: {len(chosen)} items in {len(docs)} "
        f"documents; needs Kubernetes >= {MIN_KUBERNETES}\n"
    )
    return head + "".join(f"---\n{to_yaml(doc)}" for doc in docs)


def to_yaml(obj: Any, indent: int = 0) -> str:
    """Block-style YAML of JSON data; every string is JSON-quoted, so none is misread."""
    pad = " " * indent
    if isinstance(obj, dict):
        if not obj:
            return pad + "{}\n"
        out = []
        for key, value in obj.items():
            if isinstance(value, dict | list) and value:
                out.append(f"{pad}{key}:\n{to_yaml(value, indent + 2)}")
            else:
                out.append(f"{pad}{key}: {_scalar(value)}\n")
        return "".join(out)
    if isinstance(obj, list):
        if not obj:
            return pad + "[]\n"
        out = []
        for value in obj:
            if isinstance(value, dict | list) and value:
                text = to_yaml(value, indent + 2)
                out.append(f"{pad}- {text[indent + 2 :]}")
            else:
                out.append(f"{pad}- {_scalar(value)}\n")
        return "".join(out)
    return pad + _scalar(obj) + "\n"


def _scalar(value: Any) -> str:
    if isinstance(value, dict | list):
        return "{}" if isinstance(value, dict) else "[]"
    return json.dumps(value)

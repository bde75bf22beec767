"""Kubernetes: one ``Indexed`` batch/v1 Job per image flavour, printed as YAML for ``kubectl``.

Each Job indexes the items of its flavour (``run … --flavour F``): completion index k runs the
k-th such item of the plan, read from ``JOB_COMPLETION_INDEX`` by ``mnist-suite run``. Every pod
rebuilds the plan from the same arguments and refuses to run (exit 2) if its hash differs
from the one written here, so an image whose jobs expand differently cannot run the wrong item.
With ``--plan FILE`` the saved plan travels in a ConfigMap instead.

Every Job and pod carries the recommended ``app.kubernetes.io`` labels; finished Jobs are
deleted after ``ttlSecondsAfterFinished`` (a week by default). Node selector, tolerations,
priority class, extra labels and annotations, a Kueue queue and images pinned by digest are
passed through, each checked first (:func:`check_options`).

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
from mnist_suite.claims import ABANDONED_SECONDS
from mnist_suite.config import config_hash
from mnist_suite.defaults import CLAIM_WAIT_VARIABLE, DATA_VARIABLE, OFFLINE_VARIABLE, RUNS_VARIABLE
from mnist_suite.errors import EXIT_USAGE, ConfigError
from mnist_suite.launch import thread_env
from mnist_suite.launch.container import CONTAINER_UID
from mnist_suite.options import option
from mnist_suite.plan import FLAVOURS, WorkItem, array_spec, plan_document, plan_hash

RUNS_MOUNT = "/runs"
DATA_MOUNT = "/data"
PLAN_MOUNT = "/plan"
CONTAINER = "run"
MIN_KUBERNETES = "1.29"
# A Job's name is NAME-PLAN-FLAVOUR[-ITEMS]: 8 + 1 + 3 + 1 + 8 + 3 separators and the flavour
# leave 38 characters of the 63 a label value may have, so no name is ever cut short.
MAX_NAME = 38
MAX_BACKOFF = 1000
MAX_SECONDS = 10 * 365 * 24 * 3600
EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PART_OF = "mnist-suite"
_LABEL_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class KubernetesOptions:
    image_registry: str = option("", "e.g. registry.example.com/team")
    image_tag: str = option("", "tag suffix: mnist-suite:numpy<TAG>")
    parallelism: int = option(2, "pods at a time per Job")
    backoff_limit_per_index: int = option(2, "retries of a failed index")
    runs_claim: str = option("mnist-suite-runs", "ReadWriteMany PVC shared by every pod")
    data_claim: str = option("mnist-suite-data", "PVC holding the verified mnist.npz")
    data_file: str = option("mnist.npz", "file name on the data claim")
    namespace: str | None = option(None, "the Jobs' namespace")
    name: str = option("mnist-suite", "Job name prefix")
    cpu: str = option("1", "CPU request and limit per pod")
    memory: str = option("4Gi", "memory request and limit per pod")
    run_as_user: int = option(CONTAINER_UID, "the images' numeric non-root user id")
    ttl_seconds_after_finished: int | None = option(
        7 * 24 * 3600,
        "delete finished Jobs (and their pods' logs) after this long (default a week; "
        "'none' keeps them)",
        none=True,
    )
    active_deadline_seconds: int | None = option(None, "the Job's time limit", none=True)
    max_failed_indexes: int | None = option(
        None, "fail the Job once this many indexes failed", none=True
    )
    node_selector: tuple[tuple[str, str], ...] = option(
        (), "only nodes with this label", pairs=True, metavar="KEY=VALUE"
    )
    tolerations: tuple[str, ...] = option(
        (), "tolerate this taint", flag="--toleration", metavar="KEY[=VALUE]:EFFECT"
    )
    priority_class: str | None = option(None, "the pods' PriorityClass")
    labels: tuple[tuple[str, str], ...] = option(
        (),
        "extra label on the Jobs and their pods",
        flag="--label",
        pairs=True,
        metavar="KEY=VALUE",
    )
    annotations: tuple[tuple[str, str], ...] = option(
        (), "extra annotation on the Jobs", flag="--annotation", pairs=True, metavar="KEY=VALUE"
    )
    queue: str | None = option(None, "Kueue LocalQueue (kueue.x-k8s.io/queue-name)")
    image_digests: tuple[tuple[str, str], ...] = option(
        (),
        "pull that flavour's image by digest",
        flag="--image-digest",
        pairs=True,
        metavar="FLAVOUR=sha256:…",
    )


def image_for(flavour: str, options: KubernetesOptions) -> str:
    """The image reference; ``name:tag@sha256:…`` when its digest is given (pulled by digest)."""
    name = f"mnist-suite:{flavour}{options.image_tag}"
    name = f"{options.image_registry.rstrip('/')}/{name}" if options.image_registry else name
    digest = dict(options.image_digests).get(flavour)
    return f"{name}@{digest}" if digest else name


def label_key(key: str, flag: str) -> str:
    """A label or annotation key: ``[prefix/]name``, prefix an RFC 1123 subdomain."""
    prefix, _, name = key.rpartition("/") if isinstance(key, str) else ("", "", key)
    if prefix:
        limits.dns_subdomain(prefix, flag)
    limits.match(_LABEL_NAME, name, flag, "a key like example.com/team (at most 63 characters)")
    return key


def label_value(value: str, flag: str) -> str:
    return limits.match(_LABEL_VALUE, value, flag, "a label value: letters, digits, '-_.' (<= 63)")


def toleration(text: str) -> dict[str, str]:
    """``key[=value]:Effect`` -> a toleration (``Equal`` with a value, ``Exists`` without)."""
    spec, _, effect = text.rpartition(":") if isinstance(text, str) else ("", "", "")
    key, eq, value = spec.partition("=")
    if effect not in EFFECTS or not key:
        effects = ", ".join(EFFECTS)
        raise ConfigError(f"--toleration {text!r}: expected key[=value]:EFFECT ({effects})")
    label_key(key, "--toleration")
    if eq:
        return {"key": key, "operator": "Equal", "value": label_value(value, "--toleration"),
                "effect": effect}  # fmt: skip
    return {"key": key, "operator": "Exists", "effect": effect}


def _optional_seconds(value: int | None, flag: str, low: int) -> None:
    if value is not None:
        limits.int_range(value, flag, low, MAX_SECONDS)


def check_options(options: KubernetesOptions) -> None:
    """Refuse options the API server would reject or that would name two Jobs alike."""
    _optional_seconds(options.ttl_seconds_after_finished, "--ttl-seconds-after-finished", 0)
    _optional_seconds(options.active_deadline_seconds, "--active-deadline-seconds", 1)
    if options.max_failed_indexes is not None:
        limits.int_range(options.max_failed_indexes, "--max-failed-indexes", 0, 100_000)
    for key, value in options.node_selector:
        label_key(key, "--node-selector")
        label_value(value, "--node-selector")
    for text in options.tolerations:
        toleration(text)
    if options.priority_class is not None:
        limits.dns_subdomain(options.priority_class, "--priority-class")
    for key, value in options.labels:
        label_key(key, "--label")
        label_value(value, "--label")
    for key, _ in options.annotations:
        label_key(key, "--annotation")
    if options.queue is not None:
        label_value(options.queue, "--queue")
    for flavour, digest in options.image_digests:
        if flavour not in FLAVOURS:
            raise ConfigError(
                f"--image-digest {flavour}: expected a flavour ({', '.join(FLAVOURS)})"
            )
        limits.match(_DIGEST, digest, "--image-digest", "sha256: and 64 hex digits")
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


def _common_labels(options: KubernetesOptions) -> dict[str, str]:
    """The recommended ``app.kubernetes.io`` labels, then the user's own."""
    from mnist_suite import __version__

    version = re.sub(r"[^A-Za-z0-9_.-]", "_", __version__)[:63].strip("_.-") or "unknown"
    return {
        "app.kubernetes.io/name": "mnist-suite",
        "app.kubernetes.io/instance": options.name,
        "app.kubernetes.io/version": version,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "mnist-suite",
        **dict(options.labels),
    }


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
    plan_id = plan_hash(items)
    labels = {
        **_common_labels(options),
        "app.kubernetes.io/component": f"{flavour}-runner",
        "mnist-suite/plan": plan_id,
        "mnist-suite/flavour": flavour,
    }
    if options.queue:
        labels[QUEUE_LABEL] = options.queue
    env = {
        DATA_VARIABLE: f"{DATA_MOUNT}/{options.data_file}",
        OFFLINE_VARIABLE: "1",
        RUNS_VARIABLE: RUNS_MOUNT,
        # The root filesystem is read-only: caches and config (Keras, Matplotlib) go to /tmp.
        "HOME": "/tmp",
        "MPLCONFIGDIR": "/tmp/matplotlib",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        # A pod retried after its predecessor was killed (OOM, node loss) finds that pod's claim
        # still fresh: it waits until the claim is abandoned (no heartbeat for ABANDONED_SECONDS,
        # then broken) instead of failing the retry at once, which would spend
        # backoffLimitPerIndex.
        CLAIM_WAIT_VARIABLE: str(int(ABANDONED_SECONDS) + 30),
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
    args += ["--plan-hash", plan_id, "--runs", RUNS_MOUNT]
    resources = {"cpu": options.cpu, "memory": options.memory}
    metadata: dict[str, Any] = {
        "name": _dns_name(*name),
        "labels": labels,
        "annotations": {
            **dict(options.annotations),
            "mnist-suite/items": array_spec([i.index for i in chosen]),
        },
    }
    if options.namespace:
        metadata["namespace"] = options.namespace
    limits_spec: dict[str, Any] = {}
    if options.ttl_seconds_after_finished is not None:
        limits_spec["ttlSecondsAfterFinished"] = options.ttl_seconds_after_finished
    if options.active_deadline_seconds is not None:
        limits_spec["activeDeadlineSeconds"] = options.active_deadline_seconds
    if options.max_failed_indexes is not None:
        limits_spec["maxFailedIndexes"] = min(options.max_failed_indexes, len(chosen))
    pod_extra: dict[str, Any] = {}
    if options.node_selector:
        pod_extra["nodeSelector"] = dict(options.node_selector)
    if options.tolerations:
        pod_extra["tolerations"] = [toleration(t) for t in options.tolerations]
    if options.priority_class:
        pod_extra["priorityClassName"] = options.priority_class
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "completionMode": "Indexed",
            "completions": len(chosen),
            "parallelism": min(options.parallelism, len(chosen)),
            **limits_spec,
            # Kueue admits a queued Job by unsuspending it: it must start suspended.
            **({"suspend": True} if options.queue else {}),
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
                    **pod_extra,
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
        "name": _dns_name(options.name, "plan", plan_hash(items)),
        "labels": {**_common_labels(options), "app.kubernetes.io/component": "plan"},
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
        f"# mnist-suite plan {plan_hash(items)}: {len(chosen)} items in {len(docs)} "
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

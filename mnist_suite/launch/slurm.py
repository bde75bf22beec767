"""Slurm: one array job (an sbatch script) whose task ``$SLURM_ARRAY_TASK_ID`` runs plan item
``$SLURM_ARRAY_TASK_ID``.

The script runs ``mnist-suite run …`` in the suite's image with Apptainer or Podman, or with a
Python that has the suite installed (``--mode python``, for a cluster with a shared venv).
Every value written into it is checked first (:func:`check_options`): names, sizes and times
against whitelists (``#SBATCH`` lines take no shell quoting), paths and arguments quoted with
``shlex.quote``, so no option and no saved plan can run a command of its own. Each
task re-builds the plan from the same arguments and checks its fingerprint (exit 2 if it
differs), so every task agrees on the numbering. Items to run again go on sbatch's command
line, which overrides the script's ``--array``: ``sbatch --array=4,8,15 job.sbatch``.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from mnist_suite import limits
from mnist_suite.errors import ConfigError
from mnist_suite.launch import BLAS_THREAD_VARS, TF_THREAD_VARS
from mnist_suite.launch.container import confinement
from mnist_suite.plan import FLAVOURS, WorkItem, array_spec, fingerprint

RUNS_MOUNT = "/runs"
DATA_MOUNT = "/data"
MODES = ("auto", "podman", "apptainer", "python")


@dataclass(frozen=True)
class SlurmOptions:
    runs: Path
    mode: str = "auto"  # auto: Apptainer if the node has it, else Podman
    parallelism: int = 0  # tasks at a time (the %P of --array); 0 = as many as Slurm allows
    cpus: int = 1
    memory: str = "4G"
    time: str = "02:00:00"
    logs: Path = Path("slurm-logs")
    image_registry: str = ""
    image_tag: str = ""
    data: Path | None = None  # mnist.npz on the nodes (default: $MNIST_SUITE_DATA or the cache)
    python: str = "python3"
    partition: str | None = None
    name: str = "mnist-suite"


def _image(options: SlurmOptions) -> str:
    """The image reference as shell text, the flavour taken from ``$flavour`` at run time."""
    registry = options.image_registry.rstrip("/")
    prefix = f"{registry}/mnist-suite:" if registry else "mnist-suite:"
    return f'{shlex.quote(prefix)}"$flavour"{shlex.quote(options.image_tag or "")}'


def check_options(options: SlurmOptions) -> None:
    """Refuse any option that could change the script's meaning (ConfigError, exit 2)."""
    if options.mode not in MODES:
        raise ConfigError(f"--mode {options.mode!r}: expected one of {', '.join(MODES)}")
    limits.int_range(options.parallelism, "--parallelism", 0, limits.MAX_PARALLELISM)
    limits.int_range(options.cpus, "--cpus", 1, limits.MAX_CPUS)
    limits.slurm_memory(options.memory)
    limits.slurm_time(options.time)
    limits.slurm_name(options.name)
    if options.partition is not None:
        limits.slurm_list(options.partition, "--partition")
    limits.image_registry(options.image_registry)
    limits.image_tag(options.image_tag)
    limits.plain_path(limits.resolved(options.logs, "--logs"), "--logs")
    limits.resolved(options.runs, "--runs")
    if "\0" in options.python or "\0" in str(options.runs):
        raise ConfigError("--python/--runs: a NUL character cannot be part of a path")
    if options.mode != "python":
        data = _data_path(options)
        limits.plain_path(data, "--data")  # also the source of a bind spec (``SRC:DST:ro``)
        limits.file_name(data.name, "--data")


def _data_path(options: SlurmOptions) -> Path:
    if options.data is not None:
        return limits.resolved(options.data, "--data")
    if os.environ.get("MNIST_SUITE_DATA"):
        return limits.resolved(os.environ["MNIST_SUITE_DATA"], "$MNIST_SUITE_DATA")
    from mnist_suite.data.mnist import cache_dir

    return (cache_dir() / "mnist.npz").resolve()


def sbatch_script(
    items: list[WorkItem],
    chosen: list[WorkItem],
    run_args: list[str],
    options: SlurmOptions,
) -> str:
    """The sbatch script for ``chosen`` (by default the whole plan), as text.

    Raises
    ------
    ConfigError
        An option outside its whitelist or a plan item with an unknown flavour.
    """
    check_options(options)
    if any(i.flavour not in FLAVOURS for i in items):
        raise ConfigError(f"a plan item's flavour is not one of {', '.join(FLAVOURS)}")
    plan_id = fingerprint(items)
    runs = Path(options.runs).resolve()
    logs = Path(options.logs).resolve()
    array = array_spec([i.index for i in chosen])
    if options.parallelism:
        array += f"%{options.parallelism}"
    if run_args[:1] == ["--plan"]:  # every node reads the saved plan from the shared filesystem
        run_args = ["--plan", str(Path(run_args[1]).resolve())]
    args = ["run", *run_args, "--plan-fingerprint", plan_id]
    if options.mode == "python" and options.data is not None:
        args += ["--data", str(Path(options.data).resolve())]
    directives = [
        f"--job-name={options.name}",
        f"--array={array}",
        f"--cpus-per-task={options.cpus}",
        f"--mem={options.memory}",
        f"--time={options.time}",
        f"--output={logs}/%x-%A_%a.out",
    ]
    if options.partition:
        directives.append(f"--partition={options.partition}")
    flavours = " ".join(shlex.quote(i.flavour) for i in items)
    threads = " ".join(f"{v}=$threads" for v in (*BLAS_THREAD_VARS, *TF_THREAD_VARS))
    lines = [
        "#!/bin/bash",
        *(f"#SBATCH {d}" for d in directives),
        f"# mnist-suite plan {plan_id}: {len(items)} items; this array runs {len(chosen)}.",
        "# Run again only what is pending (mnist-suite plan ... --pending): sbatch --array=LIST "
        "this-file",
        "set -euo pipefail",
        f"RUNS={shlex.quote(str(runs))}",
        f"ARGS=({shlex.join(args)})",
        f"FLAVOURS=({flavours})  # the image of each plan item, by index",
        'flavour="${FLAVOURS[$SLURM_ARRAY_TASK_ID]}"',
        "threads=${SLURM_CPUS_PER_TASK:-1}",
        f"export {threads}",
        "export TF_CPP_MIN_LOG_LEVEL=2",
        'mkdir -p "$RUNS"',
        'echo "plan item $SLURM_ARRAY_TASK_ID ($flavour) on $(hostname), $threads threads"',
    ]
    if options.mode == "python":
        lines.append(
            f'exec {shlex.quote(options.python)} -m mnist_suite "${{ARGS[@]}}" --runs "$RUNS"'
        )
        return "\n".join(lines) + "\n"
    data = _data_path(options)
    image = _image(options)
    inside = f"{DATA_MOUNT}/{data.name}"  # data's name passed limits.file_name
    env = ["MNIST_SUITE_OFFLINE=1", f"MNIST_SUITE_DATA={inside}", "SLURM_ARRAY_TASK_ID"]
    env += [*BLAS_THREAD_VARS, *TF_THREAD_VARS, "TF_CPP_MIN_LOG_LEVEL"]
    # The container launcher's confinement (memory = the task's --mem); the task's own ids own the
    # files it writes on the shared runs folder. A root task is refused rather than run as root.
    confine = shlex.join(confinement(memory=options.memory))
    podman = (
        f'podman run --rm --init {confine} --user "$(id -u):$(id -g)" '
        f'-v "$RUNS:{RUNS_MOUNT}" -v {shlex.quote(str(data))}:{inside}:ro '
        + " ".join(f"-e {e}" for e in env)
        + f' {image} "${{ARGS[@]}}" --runs {RUNS_MOUNT}'
    )
    apptainer_env = ",".join(
        ["MNIST_SUITE_OFFLINE=1", f"MNIST_SUITE_DATA={inside}"]
        + [f"{v}=$threads" for v in (*BLAS_THREAD_VARS, *TF_THREAD_VARS)]
        + ["SLURM_ARRAY_TASK_ID=$SLURM_ARRAY_TASK_ID", "TF_CPP_MIN_LOG_LEVEL=2"]
    )
    apptainer = (
        f'apptainer exec --cleanenv --containall --env "{apptainer_env}" '
        f'--bind "$RUNS:{RUNS_MOUNT}" --bind {shlex.quote(str(data))}:{inside}:ro '
        f'docker://{image} mnist-suite "${{ARGS[@]}}" --runs {RUNS_MOUNT}'
    )
    refuse_root = (
        'if [ "$(id -u)" = 0 ]; then echo "error: refusing to run a job container as root: '
        'submit as a normal user (or use --mode python)" >&2; exit 2; fi'
    )
    if options.mode == "apptainer":
        lines.append(f"exec {apptainer}")
        return "\n".join(lines) + "\n"
    if options.mode == "auto":
        lines += ["if command -v apptainer >/dev/null; then", f"  exec {apptainer}", "fi"]
    lines += [refuse_root, f"exec {podman}"]
    return "\n".join(lines) + "\n"

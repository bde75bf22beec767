"""Slurm: one array job (an sbatch script) whose task ``$SLURM_ARRAY_TASK_ID`` runs plan item
``$SLURM_ARRAY_TASK_ID``.

The script runs ``mnist-suite run …`` in the suite's image with Apptainer or Podman, or with a
Python that has the suite installed (``--mode python``, for a cluster with a shared venv).
Every value written into it is checked first (:func:`check_options`): names, sizes and times
against whitelists (``#SBATCH`` lines take no shell quoting), paths and arguments quoted with
``shlex.quote``, so no option and no saved plan can run a command of its own. Each
task re-builds the plan from the same arguments and checks its hash (exit 2 if it
differs), so every task agrees on the numbering. Items to run again go on sbatch's command
line, which overrides the script's ``--array``: ``sbatch --array=4,8,15 job.sbatch``.

Slurm signals a task (USR1) ``signal_seconds`` before its time limit: the script stops the run
(it records ``interrupted``) and requeues the task, which runs the item again. The lead may be
at most half of ``--time``: a task then always has at least as long to run as it gives up.
Extra ``#SBATCH`` lines (long options only) may not set what the script sets itself
(:func:`_own_directives`) nor what overrides it (:data:`OVERRIDES`), nor anything in
:data:`REFUSED_DIRECTIVES`, which decide who runs the script, where, in what container and with
what environment; nor any prefix sbatch would read as one of them, nor a longer name that begins
with one (``--time-min``, ``--mem-per-cpu``, ``--container-image``). sbatch reads the lines in
order and the last of a name wins, so the script's ``--time`` is the task's only time limit, the
one the signal lead is checked against. Account, QoS, constraint and extra ``#SBATCH`` lines pass
through, checked. The image must come from a
registry and MNIST from a path the nodes share; this machine's local image name and MNIST
cache are refused unless ``allow_local_paths`` says the nodes see them too.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from mnist_suite import files, limits
from mnist_suite.defaults import DATA_VARIABLE, OFFLINE_VARIABLE
from mnist_suite.errors import ConfigError
from mnist_suite.launch import BLAS_THREAD_VARS, TF_THREAD_VARS
from mnist_suite.launch.container import confinement
from mnist_suite.options import option
from mnist_suite.plan import FLAVOURS, WorkItem, array_spec, plan_hash

RUNS_MOUNT = "/runs"
DATA_MOUNT = "/data"
MODES = ("auto", "podman", "apptainer", "python")
MAX_SIGNAL_SECONDS = 65_535  # Slurm's --signal=...@SECONDS limit
# sbatch options that change one of the script's own directives without naming it: the task's
# size (one task of --cpus-per-task CPUs), where its output goes, whether it is requeued.
OVERRIDES = {
    "--cpus-per-task": ("--cpus-per-gpu", "--mincpus", "--ntasks", "--nodes"),
    "--output": ("--error", "--input", "--open-mode"),
    "--requeue": ("--no-requeue",),
}
# Directives that would change who runs the script, where, in what container or with what
# environment (``--export=ALL,BASH_ENV=...`` or ``LD_PRELOAD`` runs code of the caller's
# choosing, ``--container-mounts=/:/host`` hands a task the node), or replace the script.
REFUSED_DIRECTIVES = (
    "--export",
    "--chdir",
    "--uid",
    "--gid",
    "--get-user-env",
    "--container",
    "--no-container",
    "--wrap",
)
_CONSTRAINT = re.compile(r"^[A-Za-z0-9_.,:&|*\[\]()-]{1,256}$")
_EXTRA = re.compile(r"^--[a-z][a-z0-9-]*(?:=[\x21-\x7e]{1,256})?$")


@dataclass(frozen=True)
class SlurmOptions:
    runs: Path
    mode: str = option(
        "auto",
        "how a task runs: the image (podman/apptainer; auto: Apptainer if the node has it, "
        "else Podman) or this python",
        choices=MODES,
    )
    parallelism: int = option(0, "tasks at a time (%%P of --array; 0 = as many as Slurm allows)")
    cpus: int = option(1, "CPUs per task")
    memory: str = option("4G", "memory per task")
    time: str = option("02:00:00", "time limit per task")
    logs: Path = option(Path("slurm-logs"), "per-task log folder")
    image_registry: str = option("", "e.g. registry.example.com/team")
    image_tag: str = option("", "tag suffix: mnist-suite:numpy<TAG>")
    data: Path | None = option(
        None, "mnist.npz on the nodes (default: $MNIST_SUITE_DATA)", type=Path
    )
    python: str = option("python3", "python for --mode python", cli_default=sys.executable)
    partition: str | None = option(None, "Slurm partition")
    name: str = option("mnist-suite", "job name")
    account: str | None = option(None, "Slurm account to charge")
    qos: str | None = option(None, "quality of service")
    constraint: str | None = option(None, "node features, e.g. 'intel&avx512'")
    sbatch: tuple[str, ...] = option(
        (), "an extra #SBATCH line, e.g. --sbatch=--mail-type=END (repeatable)", metavar="OPTION"
    )
    signal_seconds: int = option(
        120,
        "stop (the run records interrupted) and requeue a task this long before its time "
        "limit (0: never; default 120)",
    )
    allow_local_paths: bool = option(
        False,
        "allow the local image name and this machine's MNIST cache (one-node clusters)",
    )


def _image(options: SlurmOptions) -> str:
    """The image reference as shell text, the flavour taken from ``$flavour`` at run time."""
    registry = options.image_registry.rstrip("/")
    prefix = f"{registry}/mnist-suite:" if registry else "mnist-suite:"
    return f'{shlex.quote(prefix)}"$flavour"{shlex.quote(options.image_tag or "")}'


def _own_directives(options: SlurmOptions, array: str = "") -> list[tuple[str, str | None]]:
    """The script's own ``#SBATCH`` options in order, as (name, value): "" for a flag, None for
    one this script leaves out. Every name here is one an extra line may not set."""
    lead = options.signal_seconds
    return [
        ("--job-name", options.name),
        ("--array", array),
        ("--cpus-per-task", str(options.cpus)),
        ("--mem", options.memory),
        ("--time", options.time),
        ("--output", f"{Path(options.logs).resolve()}/%x-%A_%a.out"),
        ("--partition", options.partition or None),
        ("--account", options.account or None),
        ("--qos", options.qos or None),
        ("--constraint", options.constraint or None),
        # USR1 to the batch shell only (B:): it stops the task and requeues it (see _finish).
        ("--signal", f"B:USR1@{lead}" if lead else None),
        ("--requeue", "" if lead else None),
    ]


def _directives(options: SlurmOptions, array: str = "") -> list[tuple[str, str]]:
    """Every ``#SBATCH`` option of the script in order: its own, then the extra lines."""
    extra = [line.partition("=")[::2] for line in options.sbatch]
    own = [(name, value) for name, value in _own_directives(options, array) if value is not None]
    return own + extra


def _check_extra(line: str, own: list[str]) -> None:
    """Refuse an extra ``#SBATCH`` line that would change what the script sets or who runs it.

    sbatch takes any unambiguous prefix of a long option (``--exp`` for ``--export``), and a
    longer name that begins with a guarded one names a variant of it (``--time-min``,
    ``--mem-per-cpu``, ``--container-image``): both are refused.
    """
    limits.match(
        _EXTRA, line, "--sbatch", "one long sbatch option like --mail-type=END (no spaces)"
    )
    name = line.partition("=")[0]

    def hits(guarded: str) -> bool:
        return guarded.startswith(name) or name.startswith(guarded)

    for guarded in own:
        if hits(guarded):
            raise ConfigError(f"--sbatch {line}: the script sets {guarded} itself")
        if any(hits(option) for option in OVERRIDES.get(guarded, ())):
            raise ConfigError(
                f"--sbatch {line}: {name} would change {guarded}, which the script sets itself"
            )
    if any(hits(refused) for refused in REFUSED_DIRECTIVES):
        raise ConfigError(
            f"--sbatch {line}: {name} would change who runs the script, where, in what "
            "container or with what environment, or replace it; not allowed"
        )


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
    limits.plain_path(files.resolved(options.logs, "--logs"), "--logs")
    files.resolved(options.runs, "--runs")
    if "\0" in options.python or "\0" in str(options.runs):
        raise ConfigError("--python/--runs: a NUL character cannot be part of a path")
    for flag, value in (("--account", options.account), ("--qos", options.qos)):
        if value is not None:
            limits.slurm_name(value, flag)
    if options.constraint is not None:
        limits.match(_CONSTRAINT, options.constraint, "--constraint", "a Slurm constraint")
    own = [name for name, _ in _own_directives(options)]
    for line in options.sbatch:
        _check_extra(line, own)
    limits.int_range(options.signal_seconds, "--signal-seconds", 0, MAX_SIGNAL_SECONDS)
    final = dict(_directives(options))  # as sbatch reads them: the last of a name wins
    limit = time_seconds(final["--time"])
    if options.signal_seconds and limit and options.signal_seconds > limit // 2:
        raise ConfigError(
            f"--signal-seconds {options.signal_seconds}: at most half of --time {final['--time']} "
            f"({limit // 2} s): the lead is taken off every task's time, so a larger one "
            "stops items that would have finished"
        )
    if options.mode != "python":
        data = _data_path(options)
        limits.plain_path(data, "--data")  # also the source of a bind spec (``SRC:DST:ro``)
        limits.file_name(data.name, "--data")
        _check_portable(options)


def time_seconds(text: str) -> int:
    """Seconds of a Slurm time limit (M, M:S, H:M:S, D-H, D-H:M, D-H:M:S); 0 means none."""
    days, _, clock = text.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    if days:  # D-H, D-H:M, D-H:M:S
        parts += [0] * (3 - len(parts))
        hours, minutes, seconds = parts
        return ((int(days) * 24 + hours) * 60 + minutes) * 60 + seconds
    if len(parts) == 1:  # M
        return parts[0] * 60
    if len(parts) == 2:  # M:S
        return parts[0] * 60 + parts[1]
    hours, minutes, seconds = parts
    return (hours * 60 + minutes) * 60 + seconds


def _check_portable(options: SlurmOptions) -> None:
    """Refuse image names and data paths of this workstation, unless allowed explicitly."""
    if options.allow_local_paths:
        return
    if not options.image_registry:
        raise ConfigError(
            "--image-registry is needed: without it the nodes would look for a local image "
            "mnist-suite:<flavour> (pass --allow-local-paths on a one-node cluster)"
        )
    if options.data is None and not os.environ.get(DATA_VARIABLE):
        raise ConfigError(
            "--data is needed: without it the nodes would bind this machine's MNIST cache "
            f"{_data_path(options)} (pass --allow-local-paths if the nodes share it)"
        )


def _data_path(options: SlurmOptions) -> Path:
    if options.data is not None:
        return files.resolved(options.data, "--data")
    if os.environ.get(DATA_VARIABLE):
        return files.resolved(os.environ[DATA_VARIABLE], f"${DATA_VARIABLE}")
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
    plan_id = plan_hash(items)
    runs = Path(options.runs).resolve()
    array = array_spec([i.index for i in chosen])
    if options.parallelism:
        array += f"%{options.parallelism}"
    if run_args[:1] == ["--plan"]:  # every node reads the saved plan from the shared filesystem
        run_args = ["--plan", str(Path(run_args[1]).resolve())]
    args = ["run", *run_args, "--plan-hash", plan_id]
    if options.mode == "python" and options.data is not None:
        args += ["--data", str(Path(options.data).resolve())]
    directives = [f"{n}={v}" if v else n for n, v in _directives(options, array)]
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
        command = f'{shlex.quote(options.python)} -m mnist_suite "${{ARGS[@]}}" --runs "$RUNS"'
        return _finish(lines, [command], options)
    data = _data_path(options)
    image = _image(options)
    inside = f"{DATA_MOUNT}/{data.name}"  # data's name passed limits.file_name
    env = [f"{OFFLINE_VARIABLE}=1", f"{DATA_VARIABLE}={inside}", "SLURM_ARRAY_TASK_ID"]
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
        [f"{OFFLINE_VARIABLE}=1", f"{DATA_VARIABLE}={inside}"]
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
        return _finish(lines, [apptainer], options)
    if options.mode == "auto":
        return _finish(lines, [apptainer, podman], options, refuse_root)
    return _finish(lines, [podman], options, refuse_root)


def _finish(lines: list[str], commands: list[str], options: SlurmOptions, guard: str = "") -> str:
    """The script's end: run the first command (with two, the second if apptainer is absent).

    With ``signal_seconds`` the command runs in the background while the shell waits, so the
    shell can take Slurm's USR1: it stops the task (SIGTERM: the run records ``interrupted``),
    requeues it and exits 0; the requeued task runs the item again.
    """
    # ``exec``: the task's process is the one Slurm and the trap below signal, not a subshell.
    if len(commands) == 2:
        body = ["if command -v apptainer >/dev/null; then", f"  run() {{ exec {commands[0]}; }}",
                "else", f"  {guard}", f"  run() {{ exec {commands[1]}; }}", "fi"]  # fmt: skip
    else:
        body = [guard] if guard else []
        body.append(f"run() {{ exec {commands[0]}; }}")
    if not options.signal_seconds:
        return "\n".join([*lines, *body, "run"]) + "\n"
    requeue = [
        "requeue() {",
        '  echo "time limit near: stopping plan item $SLURM_ARRAY_TASK_ID and requeueing it" >&2',
        '  kill -TERM "$child" 2>/dev/null || true',
        '  wait "$child" || true',
        '  scontrol requeue "${SLURM_ARRAY_JOB_ID:-$SLURM_JOB_ID}_$SLURM_ARRAY_TASK_ID"',
        "  exit 0",
        "}",
        "trap requeue USR1",
    ]
    return "\n".join([*lines, *body, *requeue, "run &", "child=$!", 'wait "$child"']) + "\n"

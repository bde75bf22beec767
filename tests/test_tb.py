"""TensorBoard events written without TensorFlow, read back with TensorBoard's own reader and
its HParams handlers: the scalar table every job follows, one experiment per job, sessions whose
status is the run's state."""

from __future__ import annotations

import dataclasses
import stat
from dataclasses import dataclass

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import metadata as hp_metadata

from mnist_suite import runs
from mnist_suite.errors import Diverged
from mnist_suite.files import file_mode
from mnist_suite.jobs import Job, all_jobs
from mnist_suite.tb import (
    EXPERIMENT_FILE,
    LIVE,
    SCALARS,
    STATUS,
    TARGET_SCALARS,
    Session,
    SummaryWriter,
    revision,
    write_experiment,
)
from tests.conftest import hparams_tables


def read(logdir):
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_scalars_images_and_hparams_round_trip(tmp_path):
    with SummaryWriter(tmp_path) as w:
        for step in range(5):
            w.scalars({"loss": 1.0 / (step + 1), "acc": step / 10}, step, prefix="epoch/")
        w.scalar("lr", 0.5, 0)
        w.image("digit", np.linspace(0, 1, 28 * 28).reshape(28, 28), step=3)
        w.session_start({"lr": 0.1, "batch_size": 32}, start_time=1000.0)
    acc = read(tmp_path)
    tags = acc.Tags()
    assert set(tags["scalars"]) == {"epoch/loss", "epoch/acc", "lr"}
    losses = acc.Scalars("epoch/loss")
    assert [e.step for e in losses] == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(
        [e.value for e in losses], [1, 1 / 2, 1 / 3, 1 / 4, 1 / 5], rtol=1e-6
    )
    (image,) = acc.Images("digit")
    assert (image.step, image.width, image.height) == (3, 28, 28)
    assert image.encoded_image_string.startswith(b"\x89PNG")
    content = acc.PluginTagToContent(hp_metadata.PLUGIN_NAME)
    assert hp_metadata.SESSION_START_INFO_TAG in set(content)
    start = hp_metadata.parse_session_start_info_plugin_data(
        content[hp_metadata.SESSION_START_INFO_TAG]
    )
    assert start.hparams["lr"].number_value == 0.1 and start.start_time_secs == 1000.0


def test_event_file_is_complete_after_close(tmp_path):
    w = SummaryWriter(tmp_path)
    w.scalar("x", 1.0, 0)
    w.close()
    w.close()  # idempotent
    assert len(read(tmp_path).Scalars("x")) == 1


def test_the_scalar_table_names_kind_slash_name_and_every_job_declares_only_its_names():
    kinds = {"epoch", "step", "latent", "eval", "target", "run"}
    assert {name.split("/")[0] for name in SCALARS} == kinds
    assert all(name.count("/") == 1 and SCALARS[name] for name in SCALARS)
    for job in all_jobs().values():
        assert job.scalars, job.name
        assert len(set(job.scalars)) == len(job.scalars), job.name
        assert set(job.scalars) <= set(SCALARS), job.name
        assert "epoch/epoch_seconds" in job.scalars, job.name


def test_revision_label():
    sha = "0123456789abcdef0123456789abcdef01234567"
    assert revision({"id": sha, "dirty": False}) == "0123456789ab"
    assert revision({"id": sha, "dirty": True}) == "0123456789ab-dirty"
    assert revision({"id": "", "dirty": False, "source": "unknown"}) == "unknown"
    assert revision({}) == "unknown"


def test_a_job_experiment_is_written_once_and_holds_its_own_hparams_and_metrics(tmp_path):
    hparams = {"job": "j", "lr": 0.1, "nesterov": True, "widths": "8,4", "fingerprint": "f"}
    metrics = ["epoch/train_loss", "eval/test_accuracy"]
    assert write_experiment(tmp_path, hparams, metrics, "j: a job")
    first = (tmp_path / EXPERIMENT_FILE).read_bytes()
    # Other values of the same hparams: the same experiment, not rewritten.
    assert not write_experiment(
        tmp_path, hparams | {"lr": 0.3, "fingerprint": "g"}, metrics, "j: a job"
    )
    assert (tmp_path / EXPERIMENT_FILE).read_bytes() == first
    assert sorted(p.name for p in tmp_path.iterdir()) == [EXPERIMENT_FILE]  # no temp file left
    # Readable by the folder's other users, as every record (docs/security.md).
    assert stat.S_IMODE((tmp_path / EXPERIMENT_FILE).stat().st_mode) == file_mode()
    experiment, groups = hparams_tables(tmp_path)
    assert experiment.description == "j: a job"
    types = {h.name: h.type for h in experiment.hparam_infos}
    assert types == {
        "job": api_pb2.DATA_TYPE_STRING,
        "lr": api_pb2.DATA_TYPE_FLOAT64,
        "nesterov": api_pb2.DATA_TYPE_BOOL,
        "widths": api_pb2.DATA_TYPE_STRING,
        "fingerprint": api_pb2.DATA_TYPE_STRING,
    }
    metric = {m.name.tag: m.description for m in experiment.metric_infos}
    assert metric == {m: SCALARS[m] for m in metrics}
    assert not groups.session_groups
    # A new field in the job's config: the experiment follows.
    assert write_experiment(tmp_path, hparams | {"dropout": 0.5}, metrics, "j: a job")
    experiment, _ = hparams_tables(tmp_path)
    assert "dropout" in {h.name for h in experiment.hparam_infos}


def test_a_link_in_the_experiments_place_is_never_followed_nor_replaced(tmp_path):
    """The run goes on without its job's experiment; the link and its target stay as they are."""
    target = tmp_path / "elsewhere"
    target.write_bytes(b"not ours")
    (tmp_path / "clf").mkdir()
    (tmp_path / "clf" / EXPERIMENT_FILE).symlink_to(target)
    with pytest.raises(OSError):
        write_experiment(tmp_path / "clf", {"lr": 0.1}, [], "clf")
    job = Job("clf", "test", Cfg, _done, scalars=("epoch/train_loss",))
    outcome = runs.execute(job, "", Cfg(), seed=0, profile="quick", out=tmp_path, run_id="r")
    assert outcome.state == "done"
    assert (tmp_path / "clf" / EXPERIMENT_FILE).readlink() == target
    assert target.read_bytes() == b"not ours"
    assert sorted(p.name for p in (tmp_path / "clf").iterdir()) == [EXPERIMENT_FILE, "r"]


def test_a_session_is_running_until_it_ends_with_its_status(tmp_path):
    tb = tmp_path / "job" / "r0" / "tb"
    done = tmp_path / "job" / "r1" / "tb"
    for path in (tb, done):
        path.mkdir(parents=True)
    writer, other = SummaryWriter(tb), SummaryWriter(done)
    hparams = {"job": "job", "lr": 0.1}
    finished = Session(other, hparams)
    other.scalar("eval/test_accuracy", 0.9, 10)
    finished.end("done")
    session = Session(writer, hparams)
    writer.scalar("eval/test_accuracy", 0.5, 3)
    writer.flush()
    _, groups = hparams_tables(tmp_path / "job")
    (group,) = groups.session_groups  # equal hparams: one group
    status = {s.name: s.status for s in group.sessions}
    assert status == {"r0/tb/running": api_pb2.STATUS_RUNNING, "r1/tb": api_pb2.STATUS_SUCCESS}
    # The running session has no metrics: the group's figures are the finished run's.
    assert [(v.name.tag, v.value) for v in group.metric_values] == [
        ("eval/test_accuracy", pytest.approx(0.9))
    ]
    session.end("diverged")
    session.end("done")  # once only: TensorBoard reads the first status
    writer.close()
    other.close()
    assert not (tb / LIVE).exists()
    _, groups = hparams_tables(tmp_path / "job")
    (group,) = groups.session_groups
    status = {s.name: s.status for s in group.sessions}
    assert status == {"r0/tb": api_pb2.STATUS_FAILURE, "r1/tb": api_pb2.STATUS_SUCCESS}


def test_runs_of_two_code_versions_are_two_groups_and_seeds_one(tmp_path):
    for run_id, fingerprint in (("s0-a", "a"), ("s1-a", "a"), ("s0-b", "b")):
        with SummaryWriter(tmp_path / run_id / "tb") as w:
            Session(w, {"job": "j", "lr": 0.1, "fingerprint": fingerprint}).end("done")
    _, groups = hparams_tables(tmp_path)
    sizes = {g.hparams["fingerprint"].string_value: len(g.sessions) for g in groups.session_groups}
    assert sizes == {"a": 2, "b": 1}


@dataclass(frozen=True)
class Cfg:
    lr: float = 0.1
    nesterov: bool = True


def _done(cfg, run):
    run.log(12, epoch=1, train_loss=0.5, dev_accuracy=0.9, epoch_seconds=0.1)
    return {"test_accuracy": 0.9, "parameters": 7850, "train_seconds": 0.1}


def _diverges(cfg, run):
    raise Diverged(7, float("nan"))


def _fails(cfg, run):
    raise ValueError("crafted failure")


def _interrupted(cfg, run):
    raise KeyboardInterrupt("SIGTERM")


@pytest.mark.parametrize(
    ("train", "state"),
    [(_done, "done"), (_diverges, "diverged"), (_fails, "failed"), (_interrupted, "interrupted")],
)
def test_the_runner_ends_each_session_with_its_run_state(tmp_path, train, state):
    job = Job("clf", "test", Cfg, train, scalars=("epoch/train_loss", "run/parameters"))
    if state == "interrupted":
        with pytest.raises(KeyboardInterrupt):
            runs.execute(job, "", Cfg(), seed=0, profile="quick", out=tmp_path, run_id="r")
    else:
        runs.execute(job, "", Cfg(), seed=0, profile="quick", out=tmp_path, run_id="r")
    run = runs.load_run(tmp_path / "clf" / "r")
    assert run.state == state
    assert not (run.path / "tb" / LIVE).exists()
    experiment, groups = hparams_tables(tmp_path / "clf")
    assert [m.name.tag for m in experiment.metric_infos] == ["epoch/train_loss", "run/parameters"]
    (group,) = groups.session_groups
    (session,) = group.sessions
    assert (session.name, session.status) == ("r/tb", STATUS[state])
    assert group.hparams["fingerprint"].string_value == (run.fingerprint or "unknown")
    assert group.hparams["revision"].string_value == revision(run.envelope["commit_info"])
    tags = set(read(run.path / "tb").Tags()["scalars"])
    if state == "done":
        assert tags == {"epoch/train_loss", "epoch/dev_accuracy", "epoch/epoch_seconds"} | {
            "run/parameters",
            "run/train_seconds",
            "run/wall_seconds",
        }


def test_a_running_run_is_a_running_session_apart_from_its_finished_seeds(tmp_path):
    seen = {}

    def train(cfg, run):
        run.log(5, epoch=1, train_loss=0.25)
        if run.seed == 1:
            # Read while this run is genuinely running, through TensorBoard's handlers.
            seen["groups"] = hparams_tables(tmp_path / "clf")[1]
        return {"train_seconds": 0.1}

    job = Job("clf", "test", Cfg, train, scalars=("epoch/train_loss",))
    for seed in (0, 1):
        runs.execute(job, "", Cfg(), seed=seed, profile="quick", out=tmp_path, run_id=f"s{seed}")
    (group,) = seen["groups"].session_groups  # one configuration: its seeds are one group
    status = {s.name: s.status for s in group.sessions}
    assert status == {"s0/tb": api_pb2.STATUS_SUCCESS, "s1/tb/running": api_pb2.STATUS_RUNNING}
    running = next(s for s in group.sessions if s.name == "s1/tb/running")
    assert not running.metric_values
    _, groups = hparams_tables(tmp_path / "clf")
    (group,) = groups.session_groups
    assert {s.name: s.status for s in group.sessions} == {
        "s0/tb": api_pb2.STATUS_SUCCESS,
        "s1/tb": api_pb2.STATUS_SUCCESS,
    }


# --- every job's quick run -----------------------------------------------------------------

# The smallest settings that still run each job's own code through every scalar it declares
# (dev splits, probes, batch losses, epochs), plus one run that diverges.
QUICK = {
    "softmax-original": ["n_train=2000", "eval_every=1000"],
    "softmax": ["epochs=2", "n_train=3000", "n_dev=500"],
    "mlp-original": ["batch_size=200", "iterations=300", "eval_every=100"],
    "mlp": ["epochs=2", "n_train=2000", "n_dev=500", "widths=32", "eval_every=5"],
    "mlp-fast": ["epochs=2", "n_train=2000", "n_dev=500", "widths=32", "eval_every=5"],
    "mlp-sprint": ["epochs=2", "n_train=2000", "n_dev=500", "widths=32", "eval_every=5"],
    "sgd-original": ["epochs=1", "n_train=1000", "n_dev=200"],
    "sgd-lr-sweep": ["lrs=0.01", "n_train=1000"],
    "sgd-grid": [
        "lrs=0.1",
        "batch_sizes=64",
        "nets=8-8",
        "epochs=2",
        "n_train=1000",
        "n_dev=200",
    ],
    "pca": ["ks=2,8", "n_train=1000", "n_test=500"],
    "ae-original": ["models=original-2d", "epochs=1", "n_train=1000", "n_test=500"],
    "ae": ["models=linear-2", "linear_epochs=1", "n_train=1000", "n_dev=200", "n_test=500"],
}
DIVERGES = ("softmax", ["epochs=1", "n_train=2000", "n_dev=500", "lr=1e30"])


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory, mnist):
    """One runs folder holding every job's quick run (softmax over two seeds, and once more
    diverging)."""
    from mnist_suite.cli import main

    out = tmp_path_factory.mktemp("every-job") / "runs"
    assert set(QUICK) == set(all_jobs())
    for job, sets in [*QUICK.items(), DIVERGES]:
        seeds = ["--seeds", "0-1"] if (job, sets) == ("softmax", QUICK["softmax"]) else []
        argv = ["run", job, "--profile", "quick", "--runs", str(out), *seeds]
        code = main([*argv, *(f for s in sets for f in ("--set", s))])
        assert code == (3 if (job, sets) == DIVERGES else 0), job  # 3: diverged
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(QUICK))
def test_every_job_follows_the_table_in_its_own_experiment(quick_runs, name):
    job = all_jobs()[name]
    found = [runs.load_run(p) for p in runs.find_runs(quick_runs, name)]
    assert found and all(r.state in ("done", "diverged") for r in found)
    written = set()
    for run in found:
        acc = read(run.path / "tb")
        written |= set(acc.Tags()["scalars"])
        epochs = [r for r in run.history if r["kind"] == "epoch"]
        if run.state == "done":
            assert epochs and [r["epoch"] for r in epochs] == sorted({r["epoch"] for r in epochs})
            # ``step`` is the optimizer step: epoch rows advance it, the final scoring ends it,
            # and the time to a target is counted in it, whichever evaluation reached it.
            steps = [r["step"] for r in run.history]
            assert [r["step"] for r in epochs] == sorted(r["step"] for r in epochs)
            assert all(r["step"] == max(steps) for r in run.history if r["kind"] == "eval")
            reached = run.metrics.get("time_to_target", {}).get("step", {})
            evaluated = [r for r in run.history if r["kind"] in ("epoch", "step")]
            probed = {r["step"] for r in evaluated if "dev_accuracy" in r}
            assert {s for s in reached.values() if s is not None} <= probed
            if "time_to_target" in run.metrics:
                assert run.metrics["time_to_target"]["evaluations"] == len(
                    [r for r in evaluated if "dev_accuracy" in r]
                )
    assert written <= set(job.scalars)
    assert set(job.scalars) - set(TARGET_SCALARS) <= written
    assert "epoch/epoch_seconds" in written

    experiment, groups = hparams_tables(quick_runs / name)
    config = {k for run in found for k in run.config}
    assert {h.name for h in experiment.hparam_infos} == {
        "job",
        "cell",
        "profile",
        "fingerprint",
        "revision",
    } | config
    assert [m.name.tag for m in experiment.metric_infos] == list(job.scalars)
    sessions = {s.name: (g, s) for g in groups.session_groups for s in g.sessions}
    assert set(sessions) == {f"{r.run_id}/tb" for r in found}
    for run in found:
        group, session = sessions[f"{run.run_id}/tb"]
        assert session.status == STATUS[run.state]
        assert group.hparams["job"].string_value == name
        assert group.hparams["fingerprint"].string_value == run.fingerprint
        assert group.hparams["revision"].string_value == revision(run.envelope["commit_info"])
        assert "seed" not in group.hparams
    if name == "softmax":
        # Two seeds of one configuration are one group; the diverging configuration another.
        assert sorted(len(g.sessions) for g in groups.session_groups) == [1, 2]


@pytest.mark.slow
def test_the_runs_root_holds_one_experiment_per_job(quick_runs):
    experiments = sorted(p.parent.name for p in quick_runs.glob(f"*/{EXPERIMENT_FILE}"))
    assert experiments == sorted(QUICK)
    for name in QUICK:
        # No experiment holds another job's config fields.
        experiment, _ = hparams_tables(quick_runs / name)
        fields = {h.name for h in experiment.hparam_infos}
        config = dataclasses.asdict(all_jobs()[name].expand(all_jobs()[name].config())[0][1])
        assert fields - {"job", "cell", "profile", "fingerprint", "revision"} == set(config)

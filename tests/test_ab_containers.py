"""``compare BASE NEW --containers``: each revision's items run in images built from its own
tree, tagged per revision, reused by the next call; a tree that cannot give images is one line.

Real Podman (or Docker) builds: each test makes a small git repository holding the package, its
pyproject.toml and docker/, commits an edit, and removes the images it built afterwards. The job
is softmax at a tiny size, in the numpy image only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mnist_suite.launch.container import detect_engine
from mnist_suite.revision_images import REVISION_LABEL, environment_key, revision_tag
from tests.test_ab import TINY, commit, compare, edit, make_repo, runs_made
from tests.test_ab import _git as git

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
ARGS = ("--containers", "--jobs", "softmax", "--seeds", "0-1", *TINY)


@pytest.fixture(scope="module")
def engine() -> str:
    found = detect_engine()
    assert found, "these tests need podman (apt-get install podman runc) or docker"
    if not os.environ.get("CONTAINERS_CONF") and shutil.which("runc"):
        os.environ["CONTAINERS_CONF"] = str(ROOT / "docker" / "containers.conf")
    return found


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> Path:
    """One wheel folder for the module's repositories: fetched once, then linked."""
    return tmp_path_factory.mktemp("wheels")


@pytest.fixture
def repo(tmp_path, mnist, engine, wheels):
    """A repository whose first commit (tag ``base``) can build the numpy image; yields it and
    removes the images built from its commits."""
    files = ("pyproject.toml", "README.md", "LICENSE", ".dockerignore", "docker/Dockerfile")
    root = make_repo(tmp_path / "repo", (*files, "docker/requirements-numpy.txt"))
    (root / "build" / "ab").mkdir(parents=True)
    (root / "build" / "ab" / "wheelhouse").symlink_to(wheels)
    yield root
    shas = git(root, "log", "--format=%H", "--all").split()
    for sha in shas:
        tag = revision_tag("numpy", sha)
        label = subprocess.run(
            [engine, "image", "inspect", "--format", f'{{{{index .Labels "{REVISION_LABEL}"}}}}',
             tag], capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        if label == sha:  # made by this test's compare: its own to remove
            subprocess.run([engine, "rmi", tag], capture_output=True)


def image_id(engine: str, tag: str) -> str:
    done = subprocess.run([engine, "image", "inspect", "--format", "{{.Id}}", tag],
                          capture_output=True, text=True)  # fmt: skip
    return done.stdout.strip() if done.returncode == 0 else ""


def test_both_revisions_run_in_their_own_images_and_the_images_are_reused(repo, engine):
    edit(repo, "jobs/softmax.py", "lr: float = 0.5", "lr: float = 0.4")
    new = commit(repo, "lr 0.4")
    base = git(repo, "rev-parse", "base")
    code, out, err = compare(repo, "base", "HEAD", *ARGS)
    assert code == 0, err
    assert [ln for ln in out.splitlines() if ln.startswith("softmax ")], out
    tags = {sha: revision_tag("numpy", sha) for sha in (base, new)}
    for tag in tags.values():
        assert f"building image {tag}" in err
    ids = {sha: image_id(engine, tag) for sha, tag in tags.items()}
    assert all(ids.values()) and len(set(ids.values())) == 2
    # Each side's runs name the image of its own revision.
    made = runs_made(repo)
    assert len(made) == 4
    # Kept apart from runs made outside images: one folder for the Dockerfile and lock both share.
    assert {p.parents[2].name for p in made} == {f".images-{environment_key(repo, ['numpy'])}"}
    for sha, found in ids.items():
        short = found.removeprefix("sha256:")
        assert sum(short in (p.parent / "config.json").read_text() for p in made) == 2, sha

    code, out2, err = compare(repo, "base", "HEAD", *ARGS)
    assert code == 0, err
    assert "building image" not in err and "nothing to run" in err
    for tag in tags.values():
        assert f"reusing image {tag}" in err
    assert {sha: image_id(engine, tag) for sha, tag in tags.items()} == ids
    assert out2 == out


def test_a_revision_that_cannot_give_images_is_refused_in_one_line(repo, engine):
    git(repo, "rm", "-q", "-r", "docker")
    commit(repo, "no images")
    code, out, err = compare(repo, "base", "HEAD", *ARGS)
    assert code == 2 and out == "" and "Traceback" not in err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert "NEW HEAD" in line and "no images can be built from its tree" in line
    assert "docker/Dockerfile" in line
    assert "building image" not in err and runs_made(repo) == []  # nothing built or run


def test_no_engine_is_refused_in_one_line(repo, engine, monkeypatch):
    monkeypatch.setenv("CONTAINER_ENGINE", "no-such-engine")
    code, out, err = compare(repo, "base", "base", *ARGS)
    assert code == 1 and out == "" and "Traceback" not in err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert "BASE base" in line and "no images can be built" in line and "no-such-engine" in line


def test_a_revision_whose_build_fails_is_refused_in_one_line(repo, engine):
    dockerfile = repo / "docker" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace(
        "FROM runtime AS numpy-deps", "FROM runtime AS numpy-deps\nRUN exit 7", 1
    ))  # fmt: skip
    commit(repo, "a broken build")
    code, out, err = compare(repo, "HEAD", "base", *ARGS)  # the broken one first: no other build
    assert code == 1 and out == "" and "Traceback" not in err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert "BASE HEAD" in line and "failed" in line and "-images.log" in line
    assert runs_made(repo) == []


def test_containers_with_folders_is_refused_in_one_line(tmp_path, run_cli):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    code, out, err = run_cli("compare", str(tmp_path / "a"), str(tmp_path / "b"), "--containers")
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        f"error: --containers runs git revisions in their own images; {tmp_path / 'a'} and "
        f"{tmp_path / 'b'} are folders or files"
    ]


def test_runs_in_images_are_keyed_by_the_dockerfile_and_the_locks_they_use(tmp_path):
    for name in ("a", "b"):
        shutil.copytree(ROOT / "docker", tmp_path / name / "docker")
    a, b = tmp_path / "a", tmp_path / "b"
    assert environment_key(a, ["numpy"]) == environment_key(b, ["numpy"])
    with open(b / "docker" / "requirements-tf.txt", "a") as f:
        f.write("# another lock\n")
    assert environment_key(a, ["numpy"]) == environment_key(b, ["numpy"])  # tf: not used
    assert environment_key(a, ["numpy", "tf"]) != environment_key(b, ["numpy", "tf"])
    with open(b / "docker" / "Dockerfile", "a") as f:
        f.write("# another build\n")
    assert environment_key(a, ["numpy"]) != environment_key(b, ["numpy"])

"""``compare BASE NEW --containers``: each revision's items run in images built from its own
tree, tagged per revision, reused by the next call; a tree that cannot give images is one line.

Real Podman (or Docker) builds: each test makes a small git repository holding the package, its
pyproject.toml and docker/, commits an edit, and removes the images it built afterwards. The job
is softmax at a tiny size, in the numpy image only.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mnist_suite.ab import Revision
from mnist_suite.errors import ConfigError
from mnist_suite.launch.container import detect_engine
from mnist_suite.revision_images import (
    REVISION_LABEL,
    environment_key,
    revision_tag,
    unpinned_line,
)
from mnist_suite.revision_tree import extracted, regular_file
from tests.test_ab import SIDE_EFFECT, TINY, commit, compare, edit, make_repo, runs_made
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


def link_commit(repo: Path, links: dict[str, str], parent: str = "HEAD") -> str:
    """A commit on top of ``parent`` adding the symbolic links ``{name: target}``, made without
    touching the work tree (whose own build/ is a folder)."""
    env = dict(os.environ, GIT_INDEX_FILE=str(repo / ".git" / "index-links"))

    def plumbing(*args: str, text: str | None = None) -> str:
        done = subprocess.run(["git", "-C", str(repo), *args], input=text, env=env,
                              capture_output=True, text=True, check=True)  # fmt: skip
        return done.stdout.strip()

    plumbing("read-tree", parent)
    for name, target in links.items():
        blob = plumbing("hash-object", "-w", "--stdin", text=target)
        plumbing("update-index", "--add", "--cacheinfo", f"120000,{blob},{name}")
    sha = plumbing("commit-tree", plumbing("write-tree"), "-p", parent, "-m", "links")
    (repo / ".git" / "index-links").unlink()
    return sha


def snapshot(folder: Path) -> dict:
    """Everything about ``folder`` that a write, a deletion or a new file would change."""
    return {
        str(p.relative_to(folder)): (p.lstat().st_mode, p.lstat().st_mtime_ns,
                                     p.read_bytes() if p.is_file() else None)
        for p in [folder, *folder.rglob("*")]
    }  # fmt: skip


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


def test_a_hostile_revision_runs_only_in_its_images_and_its_build_link_reaches_nothing(
    repo, engine, tmp_path
):
    # Its softmax job and its setup.py (run by its build backend) write a marker when run on
    # this host; its committed `build` is a link to a folder of this host.
    marker = tmp_path / "ran-on-this-host"
    host = tmp_path / "host-folder"
    (host / "suite").mkdir(parents=True)
    (host / "keep.txt").write_text("mine\n")
    (host / "suite" / "old.whl").write_text("not a wheel\n")
    before = snapshot(host)
    git(repo, "checkout", "-q", "-b", "hostile")
    with open(repo / "mnist_suite" / "jobs" / "softmax.py", "a") as f:
        f.write(SIDE_EFFECT.format(marker=str(marker)))
    (repo / "setup.py").write_text(
        SIDE_EFFECT.format(marker=str(marker)) + "\nfrom setuptools import setup\n\nsetup()\n"
    )
    commit(repo, "side effects")
    hostile = link_commit(repo, {"build": str(host)})
    git(repo, "tag", "hostile-link", hostile)
    git(repo, "checkout", "-q", "-")
    # One revision on both sides: one wheel, one image, one plan, one run, all in containers.
    args = ("--containers", "--jobs", "softmax", "--seeds", "0", *TINY)
    code, _, err = compare(repo, "hostile-link", "hostile-link", *args)
    assert code == 0, err
    assert f"building image {revision_tag('numpy', hostile)}" in err
    assert "on this host" not in err
    assert not marker.exists()
    assert snapshot(host) == before
    (made,) = runs_made(repo)
    assert '"done"' in made.read_text()
    image = image_id(engine, revision_tag("numpy", hostile)).removeprefix("sha256:")
    assert image and image in (made.parent / "config.json").read_text()
    # Only what the suite keeps is left: its copies of the tree and the containers' output
    # folders are gone.
    kept = {"buildtools", "logs", "plans", "runs", "wheelhouse"}
    assert {p.name for p in (repo / "build" / "ab").iterdir()} == kept


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


def test_a_revision_tree_is_copied_without_its_build_and_no_link_in_it_leads_out(tmp_path):
    repo = make_repo(tmp_path / "repo", ("pyproject.toml",))
    host = tmp_path / "host-folder"
    host.mkdir()
    (host / "keep.txt").write_text("mine\n")
    before = snapshot(host)
    ab = tmp_path / "ab"
    sha = link_commit(repo, {"build": str(host), "docs/readme": "../pyproject.toml", "up": "."})
    with extracted(repo, Revision("NEW", "x", sha, repo), ab) as tree:
        assert not os.path.lexists(tree / "build")
        assert os.readlink(tree / "docs" / "readme") == "../pyproject.toml"
        assert regular_file(tree, "pyproject.toml") == tree / "pyproject.toml"
        assert regular_file(tree, "docs/readme") is None  # read through no link
        assert regular_file(tree, "up/pyproject.toml") is None
    assert not tree.exists()
    for name, target in [("docs/out", "../.."), ("out", str(host)), ("docs/out", "x/../../..")]:
        sha = link_commit(repo, {name: target})
        refused = re.escape(f"{name!r} would link to {target!r}")
        with (
            pytest.raises(ConfigError, match=f"^NEW x .*{refused}"),
            extracted(repo, Revision("NEW", "x", sha, repo), ab),
        ):
            pass
        assert list(ab.iterdir()) == []  # the partial copy is removed
    assert snapshot(host) == before


def test_a_lock_is_passed_to_pip_only_when_it_is_pinned_hashed_wheels():
    for flavour in ("numpy", "tf", "bench"):
        assert unpinned_line((ROOT / "docker" / f"requirements-{flavour}.txt").read_text()) is None
    pin = "numpy==2.0.0 \\\n    --hash=sha256:" + "0" * 64 + "\n"
    for line in ["-r /etc/shadow", "--find-links /root/wheels", "--index-url http://x.invalid/",
                 "numpy==2.0.0 --hash=sha256:" + "0" * 64 + " --find-links /root",
                 "numpy @ file:///root/numpy.whl --hash=sha256:" + "0" * 64,
                 "numpy==2.0.0", "numpy==${HOME} --hash=sha256:" + "0" * 64]:  # fmt: skip
        assert unpinned_line(pin + line + "\n") == line
    # A comment inside a continued requirement: refused rather than read as pip might.
    assert unpinned_line("numpy==2.0.0 \\\n    # --find-links /root \\\n") is not None

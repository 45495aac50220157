"""cnnforge as a pre-commit hook, run end to end by the real pre-commit tool in a throwaway repository."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LENET = (ROOT / "cnnforge" / "architectures" / "lenet.yaml").read_text()
GOOD_CONV3 = "shape: [6, 16, 5, 5]"
BAD_CONV3 = "shape: [16, 16, 5, 5]"  # C_i=16, but conv0 and avgpool2 leave [6, 14, 14]
EXTRAS = {"torch", "torchvision", "hydra-core", "omegaconf", "matplotlib", "tqdm", "pillow"}
# pre-commit and git read these; a test run started from inside a git hook must not write into the caller's repo.
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PRE_COMMIT"))}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=ENV).stdout


def new_repo(path: Path) -> Path:
    path.mkdir()
    git(path, "init", "-q")
    git(path, "config", "user.name", "cnnforge tests")
    git(path, "config", "user.email", "tests@cnnforge.invalid")
    git(path, "config", "commit.gpgsign", "false")
    return path


def commit_all(repo: Path) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "snapshot")


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout as pre-commit installs it: tracked and new files, uncommitted edits included, one commit."""
    listed = git(ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    repo = new_repo(tmp_path_factory.mktemp("hook") / "cnnforge")
    for name in filter(None, listed):
        source, target = ROOT / name, repo / name
        if not os.path.lexists(source):  # deleted in the working tree, not yet in the index
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():  # architectures/ at the top links to cnnforge/architectures
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)
    commit_all(repo)
    return repo


@pytest.fixture(scope="module")
def user_repo(tmp_path_factory: pytest.TempPathFactory, hook_repo: Path) -> Path:
    """A repository with specs in architectures/ (one good, one with a channel mismatch) that uses the hook."""
    assert LENET.count(GOOD_CONV3) == 1
    repo = new_repo(tmp_path_factory.mktemp("user") / "project")
    (repo / "architectures").mkdir()
    (repo / "architectures" / "good.yaml").write_text(LENET)
    (repo / "architectures" / "bad.yaml").write_text(LENET.replace(GOOD_CONV3, BAD_CONV3))
    rev = git(hook_repo, "rev-parse", "HEAD").strip()
    config = f"repos:\n  - repo: {hook_repo}\n    rev: {rev}\n    hooks:\n      - id: cnnforge-check\n"
    (repo / ".pre-commit-config.yaml").write_text(config)
    commit_all(repo)
    return repo


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pre-commit's cache for `pre-commit run`, shared by this module's tests so the hook is installed once."""
    return tmp_path_factory.mktemp("pre-commit-home")


Hook = Callable[..., subprocess.CompletedProcess]


@pytest.fixture(scope="module")
def pre_commit(user_repo: Path, home: Path) -> Hook:
    """`pre-commit ARGS` in the user's repository."""

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "pre_commit", *args],
            cwd=user_repo,
            env={**ENV, "PRE_COMMIT_HOME": str(home), "PRE_COMMIT_COLOR": "never"},
            capture_output=True,
            text=True,
            timeout=300,
        )

    return run


def expected_error() -> str:
    """The checker's line for bad.yaml, its position found in the file rather than written in."""
    (line,) = [n for n, text in enumerate(LENET.splitlines(), 1) if GOOD_CONV3 in text]
    column = LENET.splitlines()[line - 1].index("{") + 1  # the layer's mapping
    return (
        f"architectures/bad.yaml:{line}:{column}: error: layer 3 'conv3' (conv): "
        "shape says C_i=16 but the incoming tensor has 6 channels [6, 14, 14]"
    )


# try-repo installs the hook into a throwaway cache of its own on every call, whatever PRE_COMMIT_HOME says: once
# for both specs.
def test_try_repo_fails_a_bad_spec_with_its_position_and_passes_a_good_one(pre_commit: Hook, hook_repo: Path) -> None:
    files = ("architectures/good.yaml", "architectures/bad.yaml")
    result = pre_commit("try-repo", str(hook_repo), "cnnforge-check", "--files", *files)
    assert result.returncode == 1, result.stdout + result.stderr
    assert [line for line in result.stdout.splitlines() if ".yaml:" in line] == [expected_error()], result.stdout


def test_installed_hook_checks_specs_with_the_light_core(pre_commit: Hook, home: Path) -> None:
    good = pre_commit("run", "cnnforge-check", "--files", "architectures/good.yaml")
    assert good.returncode == 0, good.stdout + good.stderr
    bad = pre_commit("run", "cnnforge-check", "--files", "architectures/bad.yaml")
    assert bad.returncode == 1 and expected_error() in bad.stdout.splitlines(), bad.stdout + bad.stderr
    (site,) = home.glob("repo*/py_env-*/lib/python*/site-packages")
    installed = {dist.metadata["Name"].lower() for dist in importlib.metadata.distributions(path=[str(site)])}
    assert {"cnnforge", "pydantic", "pyyaml"} <= installed, sorted(installed)
    assert not installed & EXTRAS, sorted(installed & EXTRAS)
    assert not (site / "torch").exists()

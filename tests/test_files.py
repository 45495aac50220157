"""Output files: temporary files that no planted symlink can redirect, stale ones cleaned up, writers in one folder
that never collide, and a full disk or a file-size limit said in one line with nothing left behind."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from cnnforge.cli import main
from cnnforge.files import WriteError, remove_stale, replace, write_new
from cnnforge.report.page import ReportError
from cnnforge.report.page import write as write_report
from cnnforge.train import checkpoint, metrics

ROOT = Path(__file__).resolve().parents[1]
LENET = ROOT / "architectures" / "lenet.yaml"
ROWS = [{"epoch": 1, "train_loss": 1.5, "train_acc": 0.5, "val_loss": 1.25, "val_acc": 0.625, "lr": 0.1}]


def _run(folder: Path) -> Path:
    folder.mkdir()
    (folder / "config.yaml").write_text("arch: {name: lenet}\n")
    return folder


# Each writer, and the predictable temporary names earlier versions used for its file.
WRITERS: dict[str, tuple[str, str, Callable[[Path], object]]] = {
    "checkpoint": ("last.pt", ".last.pt.{pid}.tmp", lambda to: checkpoint.save({"x": 1}, to / "last.pt")),
    "metrics.csv": ("metrics.csv", ".metrics.csv.tmp", lambda to: metrics.write_csv(ROWS, to / "metrics.csv")),
    "curves.png": ("curves.png", ".curves.png.tmp.png", lambda to: metrics.plot(ROWS, to / "curves.png", "t")),
    "report": ("report.html", ".report.html.{pid}.tmp", lambda to: write_report(_run(to / "run"), to / "report.html")),
    "draw": ("lenet.svg", ".lenet.svg.{pid}.tmp", lambda to: main(["draw", str(LENET), "-o", str(to / "lenet.svg")])),
    "write_new": ("a.png", ".a.png.{pid}.tmp", lambda to: write_new(to, "a", {".png": lambda f: f.write(b"x")})),
}


@pytest.mark.parametrize("writer", WRITERS)
def test_a_planted_symlink_is_never_written_through(tmp_path: Path, writer: str, capsys) -> None:
    target, old_temporary, write = WRITERS[writer]
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / old_temporary.format(pid=os.getpid())).symlink_to(victim)
    write(tmp_path)
    assert victim.read_text() == "precious"
    assert (tmp_path / target).is_file() and not (tmp_path / target).is_symlink()
    assert (tmp_path / target).stat().st_size > 0


def test_a_symlink_at_the_new_name_is_not_replaced(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "a.png").symlink_to(tmp_path / "nowhere")  # dangling: the name is taken all the same
    (tmp_path / "b.png").symlink_to(victim)
    assert write_new(tmp_path, "a", {".png": lambda f: f.write(b"x")}) == [tmp_path / "a-2.png"]
    assert write_new(tmp_path, "b", {".png": lambda f: f.write(b"x")}) == [tmp_path / "b-2.png"]
    assert victim.read_text() == "precious" and (tmp_path / "a.png").is_symlink()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporary_files_of_dead_processes_are_removed(tmp_path: Path) -> None:
    with subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE) as live:
        dead = _dead_pid()
        stale = [tmp_path / f".last.pt.{dead}.k2j4_x9q.tmp", tmp_path / f".last.pt.{dead}.tmp"]  # new and old names
        kept = [
            tmp_path / f".last.pt.{live.pid}.abcdefgh.tmp",  # a save in progress in another process
            tmp_path / f".best.pt.{dead}.abcdefgh.tmp",  # another file's: that file's writer cleans it
            tmp_path / f"last.pt.{dead}.tmp",  # not hidden: not one of ours
        ]
        for path in stale + kept:
            path.write_bytes(b"\0" * 1000)
        checkpoint.save({"x": 1}, tmp_path / "last.pt")
        assert all(path.exists() for path in kept)
        assert not any(path.exists() for path in stale)
        live.communicate(b"")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["last.pt", *(p.name for p in kept)])


def test_remove_stale_keeps_this_process_s_own(tmp_path: Path) -> None:
    mine = tmp_path / f".x.{os.getpid()}.abcdefgh.tmp"
    mine.write_bytes(b"")
    assert remove_stale(tmp_path / "x") == [] and mine.exists()


def test_two_writers_at_once_do_not_collide(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"

    def outer(file) -> None:
        file.write(b"outer")
        replace(path, lambda inner: inner.write(b"inner"))  # a second writer while the first is mid-write

    replace(path, outer)
    assert path.read_bytes() == b"outer"
    assert os.listdir(tmp_path) == ["metrics.csv"]
    names = write_new(tmp_path, "a", {".png": lambda f: write_new(tmp_path, "a", {".png": lambda g: g.write(b"2")})})
    assert names == [tmp_path / "a-2.png"] and (tmp_path / "a.png").read_bytes() == b"2"


def test_new_files_get_the_usual_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o027)
    try:
        replace(tmp_path / "a", lambda f: f.write(b"x"))
        (b,) = write_new(tmp_path, "b", {"": lambda f: f.write(b"x")})
    finally:
        os.umask(umask)
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o640 and b.stat().st_mode & 0o777 == 0o640


# -- failures: nothing left behind, the file named ---------------------------------------------------------------


def _no_space(fd: int) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("writer", WRITERS)
def test_a_full_disk_leaves_no_temporary_file(tmp_path: Path, writer: str, monkeypatch, capsys) -> None:
    target, _, write = WRITERS[writer]
    (tmp_path / target).write_bytes(b"old")
    monkeypatch.setattr(os, "fsync", _no_space)
    if writer == "draw":
        assert write(tmp_path) == 1
        expected = f"{tmp_path / 'lenet.svg'}: cannot write: No space left on device"
        assert capsys.readouterr().err == f"cnnforge draw: error: {expected}\n"
    else:
        with pytest.raises(ReportError if writer == "report" else WriteError) as raised:
            write(tmp_path)
        assert str(raised.value) == f"{tmp_path / target}: cannot write: No space left on device"
    assert (tmp_path / target).read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "run") == [target]


def test_ctrl_c_mid_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    def interrupted(file) -> None:
        file.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        replace(tmp_path / "a", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_new(tmp_path, "b", {".png": lambda f: f.write(b"x"), ".npy": interrupted})
    assert os.listdir(tmp_path) == []


def test_a_folder_that_is_not_there(tmp_path: Path) -> None:
    with pytest.raises(WriteError, match=f"^{tmp_path / 'no' / 'a'}: cannot write: No such file or directory$"):
        replace(tmp_path / "no" / "a", lambda f: f.write(b"x"))
    with pytest.raises(WriteError, match=f"^{tmp_path / 'no' / 'b.png'}: cannot write: No such file or directory$"):
        write_new(tmp_path / "no", "b", {".png": lambda f: f.write(b"x")})


def test_checkpoint_into_a_full_disk_during_training(tmp_path: Path, monkeypatch) -> None:
    from train_helpers import app_folder, train, write_spec

    write_spec(tmp_path)
    fsync = os.fsync

    def no_space_for_checkpoints(fd: int) -> None:  # the run's summary and config are written first
        (_no_space if ".pt." in os.readlink(f"/proc/self/fd/{fd}") else fsync)(fd)

    monkeypatch.setattr(os, "fsync", no_space_for_checkpoints)
    with app_folder(tmp_path):
        run = train("arch=tiny.yaml", "data=synthetic", "trainer.epochs=1", "data.train_size=64", "data.val_size=32")
    assert run.code == 1, run.output
    assert f"{run.folder / 'last.pt'}: cannot write: No space left on device" in run.output
    assert "Traceback" not in run.output
    assert not list(run.folder.glob(".*.tmp"))


def test_a_run_folder_without_space_is_one_line(tmp_path: Path, monkeypatch) -> None:
    from train_helpers import app_folder, train, write_spec

    write_spec(tmp_path)
    monkeypatch.setattr(os, "fsync", _no_space)
    with app_folder(tmp_path):
        run = train("arch=tiny.yaml", "data=synthetic", "trainer.epochs=1", "data.train_size=64", "data.val_size=32")
    assert run.code == 1, run.output
    assert "summary.txt: cannot write: No space left on device" in run.output
    assert "Traceback" not in run.output
    assert run.folders == []  # refused before training: nothing is left that looks like a run


def test_a_file_size_limit_is_one_line(tmp_path: Path) -> None:
    """Over `ulimit -f`, the kernel sends SIGXFSZ, which would kill the process without a word."""
    command = f"ulimit -f 4; exec {sys.executable} -m cnnforge draw {LENET} -o out.png"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "cnnforge draw: error: out.png: cannot write: File too large\n"
    assert os.listdir(tmp_path) == []

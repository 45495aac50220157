"""The `cnnforge` command: exit codes, what goes to stdout and stderr, JSON summaries, and no torch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from test_source import FAST

from cnnforge import check_file
from cnnforge.cli import main

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURES = ROOT / "architectures"
LENET = (ARCHITECTURES / "lenet.yaml").read_text()
HEAD = "name: t\ninput: [1, 32, 32]\nlayers:\n"

# LeNet-5 by hand: conv 5x5 shrinks 32 -> 28 and 14 -> 10, each 2x2 average pool halves.
# conv params C_o*C_i*25 + C_o; conv MACs H_o*W_o*C_o*C_i*25; linear params F_i*F_o + F_o, MACs F_i*F_o.
LENET_LAYERS = [
    (0, "conv0", "conv", [6, 28, 28], 6 * 1 * 25 + 6, 28 * 28 * 6 * 1 * 25),
    (1, "tanh1", "tanh", [6, 28, 28], 0, 0),
    (2, "avgpool2", "avgpool", [6, 14, 14], 0, 0),
    (3, "conv3", "conv", [16, 10, 10], 16 * 6 * 25 + 16, 10 * 10 * 16 * 6 * 25),
    (4, "tanh4", "tanh", [16, 10, 10], 0, 0),
    (5, "avgpool5", "avgpool", [16, 5, 5], 0, 0),
    (6, "flatten6", "flatten", [400], 0, 0),
    (7, "linear7", "linear", [120], 400 * 120 + 120, 400 * 120),
    (8, "tanh8", "tanh", [120], 0, 0),
    (9, "linear9", "linear", [84], 120 * 84 + 84, 120 * 84),
    (10, "tanh10", "tanh", [84], 0, 0),
    (11, "linear11", "linear", [10], 84 * 10 + 10, 84 * 10),
]


def cnnforge(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `python -m cnnforge ARGS` in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "cnnforge", *args], capture_output=True, text=True, cwd=cwd or ROOT, timeout=120
    )


def run(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    """Run the CLI in this process: (exit code, stdout, stderr)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder holding good.yaml, warn.yaml (a warning only) and bad.yaml (an error)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "good.yaml").write_text(LENET)
    (tmp_path / "warn.yaml").write_text(HEAD + "  - {type: conv, shape: [1, 6, 5, 5], stride: 2}\n")
    (tmp_path / "bad.yaml").write_text(HEAD + "  - {type: conv, shape: [3, 6, 5, 5]}\n")
    return tmp_path


# --- check -----------------------------------------------------------------------------------------------------


def test_check_shipped_specs(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    code, out, err = run(capsys, "check", "architectures")
    assert (code, err) == (0, "")
    # every number is held to torchvision's own in tests/test_torchvision_specs.py
    assert out.splitlines() == [
        "architectures/alexnet.yaml: ok: [3, 224, 224] -> [1000], 61,100,840 params, 714,188,480 MACs",
        "architectures/alexnet2012.yaml: ok: [3, 227, 227] -> [1000], 60,965,224 params, 724,406,816 MACs",
        "architectures/convnext_tiny.yaml: ok: [3, 224, 224] -> [1000], 28,589,128 params, 4,455,531,264 MACs",
        "architectures/densenet121.yaml: ok: [3, 224, 224] -> [1000], 7,978,856 params, 2,834,161,664 MACs",
        "architectures/efficientnet_b0.yaml: ok: [3, 224, 224] -> [1000], 5,288,548 params, 385,814,752 MACs",
        "architectures/efficientnet_v2_s.yaml: ok: [3, 224, 224] -> [1000], 21,458,488 params, 2,849,895,872 MACs",
        "architectures/googlenet.yaml: ok: [3, 224, 224] -> [1000], 6,624,904 params, 1,498,376,192 MACs",
        "architectures/inception_v3.yaml: ok: [3, 299, 299] -> [1000], 23,834,568 params, 5,713,216,096 MACs",
        "architectures/lenet.yaml: ok: [1, 32, 32] -> [10], 61,706 params, 416,520 MACs",
        "architectures/mnasnet1_0.yaml: ok: [3, 224, 224] -> [1000], 4,383,312 params, 314,415,872 MACs",
        "architectures/mobilenet_v2.yaml: ok: [3, 224, 224] -> [1000], 3,504,872 params, 300,774,272 MACs",
        "architectures/mobilenet_v3_large.yaml: ok: [3, 224, 224] -> [1000], 5,483,032 params, 216,589,760 MACs",
        "architectures/regnet_y_400mf.yaml: ok: [3, 224, 224] -> [1000], 4,344,144 params, 401,842,848 MACs",
        "architectures/resnet18.yaml: ok: [3, 224, 224] -> [1000], 11,689,512 params, 1,814,073,344 MACs",
        "architectures/resnet50.yaml: ok: [3, 224, 224] -> [1000], 25,557,032 params, 4,089,184,256 MACs",
        "architectures/resnext50_32x4d.yaml: ok: [3, 224, 224] -> [1000], 25,028,904 params, 4,230,479,872 MACs",
        "architectures/shufflenet_v2_x1_0.yaml: ok: [3, 224, 224] -> [1000], 2,278,604 params, 144,907,992 MACs",
        "architectures/squeezenet1_1.yaml:34:57: warning: layer 'features.conv1' (conv): stride [2, 2] leaves"
        " the last 1 row and 1 column of the input [3, 224, 224] unread; torch drops them silently",
        "architectures/squeezenet1_1.yaml: ok: [3, 224, 224] -> [1000], 1,235,496 params, 349,151,936 MACs",
        "architectures/vgg16.yaml: ok: [3, 224, 224] -> [1000], 138,357,544 params, 15,470,264,320 MACs",
        "architectures/vgg16_bn.yaml: ok: [3, 224, 224] -> [1000], 138,365,992 params, 15,470,264,320 MACs",
        "architectures/wide_resnet50_2.yaml: ok: [3, 224, 224] -> [1000], 68,883,240 params, 11,398,021,120 MACs",
    ]


def test_check_prints_the_lenet_error_exactly(tmp_path: Path) -> None:
    (tmp_path / "architectures").mkdir()
    wrong = LENET.replace("shape: [6, 16, 5, 5]", "shape: [16, 16, 5, 5]")
    (tmp_path / "architectures" / "lenet.yaml").write_text(wrong)
    result = cnnforge("check", "architectures/lenet.yaml", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (1, "")
    assert result.stdout == (
        "architectures/lenet.yaml:8:5: error: layer 3 'conv3' (conv): "
        "shape says C_i=16 but the incoming tensor has 6 channels [6, 14, 14]\n"
    )


def test_warnings_alone_pass(specs: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(capsys, "check", "warn.yaml")
    assert code == 0
    warning, ok = out.splitlines()
    assert warning.startswith("warn.yaml:4:39: warning: layer 0 'conv0' (conv): stride [2, 2] ")
    assert ok.startswith("warn.yaml: ok: [1, 32, 32] -> [6, 14, 14]")


def test_any_error_fails_and_every_file_is_checked(specs: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(capsys, "check", "bad.yaml", "good.yaml", "warn.yaml")
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("bad.yaml:4:5: error: layer 0 'conv0' (conv): shape says C_i=3 ")
    assert "good.yaml: ok: [1, 32, 32] -> [10], 61,706 params, 416,520 MACs" in lines
    assert any(line.startswith("warn.yaml:4:39: warning:") for line in lines)
    assert len(lines) == 4


def test_quiet_prints_only_problems(specs: Path, capsys: pytest.CaptureFixture) -> None:
    assert run(capsys, "check", "-q", "good.yaml") == (0, "", "")
    code, out, _ = run(capsys, "check", "--quiet", "good.yaml", "warn.yaml", "bad.yaml")
    assert code == 1
    assert [line.split(":")[0] for line in out.splitlines()] == ["warn.yaml", "bad.yaml"]


def test_folders_are_searched_for_yaml_and_yml(specs: Path, capsys: pytest.CaptureFixture) -> None:
    nested = specs / "more" / "deeper"
    nested.mkdir(parents=True)
    shutil.copy(specs / "good.yaml", nested / "lenet.yml")
    (nested / "notes.txt").write_text("not: a spec [")
    (nested / "README.md").write_text("# not a spec")
    code, out, _ = run(capsys, "check", "-q", "more")
    assert (code, out) == (0, "")
    code, out, _ = run(capsys, "check", "more")
    assert out.splitlines() == [
        f"{Path('more/deeper/lenet.yml')}: ok: [1, 32, 32] -> [10], 61,706 params, 416,520 MACs"
    ]
    code, out, _ = run(capsys, "check", "-q", ".")
    assert code == 1
    assert sorted(line.split(":")[0] for line in out.splitlines()) == ["bad.yaml", "warn.yaml"]


def test_empty_folder_fails(specs: Path, capsys: pytest.CaptureFixture) -> None:
    (specs / "empty").mkdir()
    (specs / "empty" / "notes.txt").write_text("hello")
    code, out, _ = run(capsys, "check", "empty", "good.yaml")
    assert code == 1
    assert out.splitlines()[0] == "empty: error: no *.yaml or *.yml files in this folder"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_what_is_not_a_regular_file_is_refused_without_being_opened(specs: Path) -> None:
    """Opening a FIFO for reading waits for a writer: check would hang. It is refused, named, at once."""
    os.mkfifo(specs / "pipe.yaml")
    (specs / "more").mkdir()
    os.mkfifo(specs / "more" / "pipe.yml")
    (specs / "link.yaml").symlink_to(specs / "good.yaml")  # a link to a regular file is fine
    (specs / "more" / "loop.yaml").symlink_to(specs / "more" / "loop.yaml")
    pipe = "pipe.yaml: error: cannot read file: it is a named pipe (FIFO), not a regular file"
    result = cnnforge("check", "-q", "pipe.yaml", "more", "link.yaml", cwd=specs)
    assert (result.returncode, result.stderr) == (1, "")
    assert result.stdout.splitlines() == [
        pipe,
        f"{Path('more/loop.yaml')}: error: cannot read file: Too many levels of symbolic links",
        f"{Path('more/pipe.yml')}: error: cannot read file: it is a named pipe (FIFO), not a regular file",
    ]
    result = cnnforge("summary", "pipe.yaml", cwd=specs)
    assert (result.returncode, result.stderr) == (1, f"{pipe}\n")


def test_folders_that_cannot_be_listed_are_errors(
    specs: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pre-commit hook must not pass over a folder it cannot read. Simulated, as root reads any folder."""
    locked = specs / "more" / "locked"
    locked.mkdir(parents=True)
    (locked / "bad.yaml").write_text(HEAD + "  - {type: convv}\n")
    shutil.copy(specs / "good.yaml", specs / "more" / "good.yaml")
    scandir = os.scandir

    def refusing(path: object = ".") -> object:
        if Path(os.fsdecode(path)).resolve() == locked.resolve():
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)
    code, out, _ = run(capsys, "check", "-q", "more")
    assert (code, out) == (1, f"{Path('more/locked')}: error: cannot read folder: Permission denied\n")
    code, out, _ = run(capsys, "check", "-q", "more/locked")
    assert (code, out) == (1, f"{Path('more/locked')}: error: cannot read folder: Permission denied\n")
    code, out, _ = run(capsys, "check", "--format", "json", "more")
    assert code == 1 and {"file": str(Path("more/locked")), "ok": False} in json.loads(out)["files"]


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions")
def test_unreadable_folders_and_files_fail_for_real() -> None:
    """The same with real permissions: as root (CI), run as nobody through setpriv, since root reads anything."""
    as_nobody: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: chmod 000 cannot stop root from reading")
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]

    def check(*args: Path) -> list[str]:
        command = [*as_nobody, sys.executable, "-m", "cnnforge", "check", "-q", *map(str, args)]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": "/"}
        done = subprocess.run(command, capture_output=True, text=True, cwd="/", timeout=60, env=env)
        assert (done.returncode, done.stderr) == (1, "")
        return done.stdout.splitlines()

    top = Path(tempfile.mkdtemp())  # not under pytest's tmp_path, which only its owner may enter
    try:
        (top / "locked").mkdir()
        (top / "locked" / "bad.yaml").write_text(HEAD + "  - {type: convv}\n")
        (top / "secret.yaml").write_text(LENET)
        (top / "good.yaml").write_text(LENET)
        for path, mode in ((top, 0o755), (top / "good.yaml", 0o644), (top / "locked", 0), (top / "secret.yaml", 0)):
            path.chmod(mode)
        assert check(top) == [
            f"{top / 'locked'}: error: cannot read folder: Permission denied",
            f"{top / 'secret.yaml'}: error: cannot read file: Permission denied",
        ]
        top.chmod(0o700)
        assert check(top, top / "good.yaml") == [
            f"{top}: error: cannot read folder: Permission denied",
            f"{top / 'good.yaml'}: error: cannot read file: Permission denied",  # cannot even be looked at
        ]
    finally:
        (top / "locked").chmod(0o755)
        shutil.rmtree(top)


def test_missing_file_fails(specs: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(capsys, "check", "nowhere.yaml", "good.yaml")
    assert code == 1
    assert out.splitlines()[0] == "nowhere.yaml: error: cannot read file: No such file or directory"


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["check"],
        ["check", "--bogus", "good.yaml"],
        ["check", "-x", "good.yaml"],
        ["summary"],
        ["summary", "good.yaml", "bad.yaml"],
        ["summary", "good.yaml", "--macs", "flops"],
        ["summary", "good.yaml", "--bogus"],
        ["frobnicate", "good.yaml"],
    ],
)
def test_usage_errors_exit_2(specs: Path, capsys: pytest.CaptureFixture, argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and "usage: cnnforge" in err


def test_exit_codes_from_a_real_process(specs: Path) -> None:
    assert cnnforge("check", cwd=specs).returncode == 2
    assert cnnforge("check", "good.yaml", "warn.yaml", cwd=specs).returncode == 0
    assert cnnforge("check", "good.yaml", "bad.yaml", cwd=specs).returncode == 1


def test_version(capsys: pytest.CaptureFixture) -> None:
    from cnnforge import __version__

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"cnnforge {__version__}\n"


# --- summary ---------------------------------------------------------------------------------------------------


def summary_json(capsys: pytest.CaptureFixture, path: Path, *extra: str) -> dict:
    code, out, err = run(capsys, "summary", str(path), "--json", *extra)
    assert (code, err) == (0, "")
    return json.loads(out)  # refuses anything but exactly one JSON value


def test_summary_json_lenet(capsys: pytest.CaptureFixture) -> None:
    data = summary_json(capsys, ARCHITECTURES / "lenet.yaml")
    # the original keys stay as they are, first; analysis keys (tests/test_summary_analysis.py) come after them
    original = ["name", "input", "output", "total_params", "total_macs", "macs_convention", "layers"]
    assert list(data)[: len(original)] == original
    assert (data["name"], data["input"], data["output"]) == ("lenet5", [1, 32, 32], [10])
    assert (data["total_params"], data["total_macs"], data["macs_convention"]) == (61706, 416520, "cnnforge")
    assert [tuple(layer.values())[:6] for layer in data["layers"]] == LENET_LAYERS
    assert all(list(layer)[:6] == ["index", "name", "type", "output", "params", "macs"] for layer in data["layers"])


def test_summary_json_alexnet(capsys: pytest.CaptureFixture) -> None:
    data = summary_json(capsys, ARCHITECTURES / "alexnet.yaml")
    assert (data["input"], data["output"]) == ([3, 224, 224], [1000])
    assert (data["total_params"], data["total_macs"]) == (61_100_840, 714_188_480)
    assert data["total_params"] == sum(layer["params"] for layer in data["layers"])
    assert data["total_macs"] == sum(layer["macs"] for layer in data["layers"])
    assert data["layers"][0]["output"] == [64, 55, 55]  # (224 + 2*2 - 11) // 4 + 1
    assert data["layers"][-1]["output"] == data["output"]


def test_summary_torchinfo_convention(capsys: pytest.CaptureFixture) -> None:
    lenet = summary_json(capsys, ARCHITECTURES / "lenet.yaml", "--macs", "torchinfo")
    assert (lenet["total_macs"], lenet["macs_convention"], lenet["total_params"]) == (423038, "torchinfo", 61706)
    # torchinfo counts each parameter, bias included, once per output position
    assert [layer["macs"] for layer in lenet["layers"] if layer["params"]] == [
        156 * 28 * 28,
        2416 * 10 * 10,
        48120,
        10164,
        850,
    ]
    alexnet = summary_json(capsys, ARCHITECTURES / "alexnet.yaml", "--macs", "torchinfo")
    assert (alexnet["total_macs"], alexnet["total_params"]) == (714_682_664, 61_100_840)


def test_summary_table(capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(capsys, "summary", str(ARCHITECTURES / "lenet.yaml"))
    assert (code, err) == (0, "")
    assert out.startswith("lenet5: input [1, 32, 32] -> output [10]\n")
    assert "Total params: 61,706\n" in out and "416,520" in out
    assert len([line for line in out.splitlines() if line.split()[1:2] in (["conv0"], ["linear11"])]) == 2


def test_summary_warnings_go_to_stderr(specs: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(capsys, "summary", "warn.yaml", "--json")
    assert code == 0
    assert json.loads(out)["output"] == [6, 14, 14]
    assert err.startswith("warn.yaml:4:39: warning: ") and err.count("\n") == 1


def test_summary_of_an_invalid_file_prints_what_check_prints(specs: Path, capsys: pytest.CaptureFixture) -> None:
    (specs / "worse.yaml").write_text(HEAD + "  - {type: convv}\n  - {type: relu, name: forward}\n")
    for name in ("bad.yaml", "worse.yaml", "nowhere.yaml", "."):
        _, checked, _ = run(capsys, "check", name)
        for extra in ([], ["--json"]):
            code, out, err = run(capsys, "summary", name, *extra)
            assert (code, out) == (1, "")
            if name != ".":
                assert err == checked and err
    assert err.startswith(".: error: cannot read file: ")


def test_summary_pipes_into_json_tools() -> None:
    result = cnnforge("summary", "architectures/alexnet2012.yaml", "--json")
    assert (result.returncode, result.stderr) == (0, "")
    assert json.loads(result.stdout)["total_params"] == 60_965_224


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full here")
@pytest.mark.parametrize(
    "args",
    [
        ["check", "architectures"],
        ["check", "--format", "json", "architectures"],
        ["summary", "architectures/alexnet.yaml", "-a"],
        ["sizes", "architectures/alexnet.yaml"],
        ["schema"],
    ],
)
def test_output_to_a_full_disk_is_one_error_line(args: list[str]) -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "cnnforge", *args], stdout=full, stderr=subprocess.PIPE, text=True, cwd=ROOT
        )
    assert (done.returncode, done.stderr) == (1, "cnnforge: error: cannot write output: No space left on device\n")


@pytest.mark.parametrize("args", [["check", "architectures/lenet.yaml"], ["summary", "architectures/alexnet.yaml"]])
def test_a_reader_that_stops_early_ends_the_output_quietly(args: list[str]) -> None:
    """`cnnforge ... | head -1`: the pipe closes before the output is written; exit 0, nothing on stderr."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cnnforge", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT
    )
    process.stdout.close()  # before the interpreter has even started
    assert (process.wait(timeout=60), process.stderr.read()) == (0, b"")
    process.stderr.close()


NON_ASCII = "name: réseau🙂\ninput: [1, 8, 8]\nlayers:\n  - {type: relu}\n  - {type: relu, strides: 1}\n"


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["check"], "caf\\xe9.yaml:5:"),
        (["check", "--format", "json"], '"caf\\u00e9.yaml"'),
        (["summary"], "r\\xe9seau\\U0001f642: input [1, 8, 8]"),
        (["summary", "-a"], "r\\xe9seau\\U0001f642: input [1, 8, 8]"),
        (["sizes"], "r\\xe9seau\\U0001f642: input [1, 8, 8]"),
    ],
)
def test_non_ascii_names_print_on_an_ascii_terminal(tmp_path: Path, args: list[str], shown: str) -> None:
    (tmp_path / "café.yaml").write_text(NON_ASCII, encoding="utf-8")
    (tmp_path / "good.yaml").write_text(NON_ASCII.replace(", strides: 1", ""), encoding="utf-8")
    file = "café.yaml" if args[0] == "check" else "good.yaml"
    env = {**os.environ, "PYTHONIOENCODING": "ascii", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "cnnforge", *args, file], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert (done.returncode, done.stderr) == (1 if args[0] == "check" else 0, "")
    assert shown in done.stdout


# --- staying light: check and summary never import torch -------------------------------------------------------

NO_TORCH = """
import sys
from cnnforge import check_file
from cnnforge.cli import main
codes = [main(["check", "architectures"]), main(["summary", "architectures/alexnet.yaml", "--json"]),
         main(["summary", "architectures/lenet.yaml", "--macs", "torchinfo"]), main(["check", "nowhere.yaml"])]
roots = {"torch", "torchinfo", "hydra", "omegaconf", "pytorch_grad_cam", "cv2"}
heavy = sorted(m for m in sys.modules if m.split(".")[0] in roots)
print(codes, heavy, file=sys.stderr)
"""


def test_check_and_summary_do_not_import_torch() -> None:
    result = subprocess.run([sys.executable, "-c", NO_TORCH], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "[0, 0, 0, 1] []"


# --- hostile files: refused, one by one, quickly, never a traceback ---------------------------------------------

HOSTILE = {
    "bomb.yaml": "a: &a [x, x, x, x, x, x, x, x, x]\n"
    + "".join(f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)),
    "recursive.yaml": "name: &n [*n]\n",
    "deep.yaml": "[" * 100_000,
    "deep_map.yaml": "{a: " * 100_000,
    "long_number.yaml": "name: t\ninput: [1, 32, " + "9" * 5000 + "]\n",
    "huge_float.yaml": HEAD + "  - {type: dropout, p: 1e999}\n",
    "nan.yaml": HEAD + "  - {type: lrn, size: 5, alpha: .nan}\n",
    "python.yaml": "name: !!python/object/apply:os.system ['echo unsafe']\n",
    "name.yaml": "name: !!python/name:os.system\n",
    "binary.yaml": "name: !!binary aGVsbG8=\n",
    "set.yaml": "name: !!set {a, b}\n",
    "custom.yaml": "name: !mine thing\n",
    "duplicate.yaml": "name: a\nname: b\n",
    "syntax.yaml": "name: [t\ninput: [1, 2, 3]\n",
    "documents.yaml": LENET + "---\n" + LENET,
    "nul.yaml": "name: t\x00\n",
    "control.yaml": "name: t\x1b[2J\n",
    "tab.yaml": HEAD + "\t- {type: relu}\n",
    "many.yaml": HEAD + "  - {type: relu}\n" * 60_000,
    "empty.yaml": "",
    "list.yaml": "- 1\n- 2\n",
}


def test_hostile_files_are_refused_quickly(tmp_path: Path) -> None:
    for name, text in HOSTILE.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    (tmp_path / "big.yaml").write_bytes(b"name: t\n" + b"# padding\n" * 600_000)
    names = {*HOSTILE, "latin1.yaml", "big.yaml"}
    for name in sorted(names):
        start = time.perf_counter()
        compiled = check_file(tmp_path / name)
        assert time.perf_counter() - start < FAST, name
        assert not compiled.ok and compiled.diagnostics[0].severity == "error", name

    result = cnnforge("check", str(tmp_path))
    assert (result.returncode, result.stderr) == (1, "")
    lines = result.stdout.splitlines()
    assert all(": error: " in line for line in lines)
    assert {Path(line.split(":")[0]).name for line in lines} == names
    assert f"{tmp_path / 'latin1.yaml'}:1:10: error: not UTF-8 text (byte 0xe9)" in lines

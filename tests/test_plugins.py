"""Layer kinds from installed packages: tests/plugin, installed with pip into a temporary virtual environment, adds
two kinds that a spec then uses through check, summary, schema, the builder and training; a broken plugin is said
in one line; and a spec file never makes cnnforge import anything."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from cnnforge.cli import main
from cnnforge.layers import LAYERS, register
from cnnforge.layers.plugins import GROUP, PluginError, load
from cnnforge.spec import parse

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = Path(__file__).resolve().parent / "plugin"
LENET = str(ROOT / "architectures" / "lenet.yaml")
SPEC = """\
name: blurry
input: [1, 8, 8]
layers:
  - {type: conv, name: conv, shape: [1, 8, 3, 3], padding: 1}   # -> [8, 8, 8]
  - {type: relu}
  - type: add
    branches:
      blurred: [{type: blur_pool, name: blur, stride: 1}]         # [8, 8, 8]: 8*8*8 outputs of 3x3 taps
      input: []
  - {type: group_shuffle, name: shuffle, groups: 2}
  - {type: blur_pool, name: down}                                 # -> [8, 4, 4]
  - {type: flatten}                                               # -> [128]
  - {type: linear, name: fc, shape: [128, 10]}
"""


def environment(*paths: Path | str) -> dict[str, str]:
    """The environment for a fresh interpreter: this checkout's cnnforge first on the path, then `paths`."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HYDRA_FULL_ERROR")}
    return {**env, "PYTHONPATH": os.pathsep.join(map(str, [ROOT, *paths])), "OMP_NUM_THREADS": "1"}


def python(interpreter: Path | str, *args: str, cwd: Path, paths: tuple[Path | str, ...] = ()) -> tuple[int, str, str]:
    done = subprocess.run(
        [str(interpreter), *args], cwd=cwd, env=environment(*paths), capture_output=True, text=True, timeout=300
    )
    return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding blurry.yaml and venv/, a new virtual environment that sees this one's packages, with
    tests/plugin pip-installed."""
    folder = tmp_path_factory.mktemp("plugin")
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", folder / "venv"], check=True
    )
    interpreter = folder / "venv" / "bin" / "python"
    purelib = subprocess.run(
        [interpreter, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # --system-site-packages gives the base interpreter's packages; these tests may run in a venv of their own
    Path(purelib, "outer.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    shutil.copytree(PLUGIN, folder / "src")  # built there: no build/ or egg-info left in the checkout
    pip = ("-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", "--no-compile")
    code, out, err = python(interpreter, *pip, "--disable-pip-version-check", str(folder / "src"), cwd=folder)
    assert code == 0, out + err
    (folder / "blurry.yaml").write_text(SPEC)
    return folder


# check, summary and schema in one process, as the CLI runs them: the kinds load once, lazily, without torch
COMMANDS = """
import json, sys
import cnnforge.layers
from cnnforge.cli import main
from cnnforge.layers import LAYERS
lazy = "cnnforge_blurpool" not in sys.modules
codes = [main(["check", "blurry.yaml"]), main(["summary", "--json", "blurry.yaml"])]
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "hydra"))
codes.append(main(["schema"]))
print(json.dumps({"lazy": lazy, "codes": codes, "heavy": heavy, "kinds": sorted(LAYERS)}), file=sys.stderr)
"""


def test_plugin_kinds_are_checked_summarized_and_in_the_schema(venv: Path) -> None:
    code, out, err = python(venv / "venv/bin/python", "-c", COMMANDS, cwd=venv)
    assert code == 0, err
    said = json.loads(err.strip().splitlines()[-1])
    assert said == {
        "lazy": True,
        "codes": [0, 0, 0],
        "heavy": [],
        "kinds": sorted([*LAYERS, "blur_pool", "group_shuffle"]),
    }
    checked, rest = out.split("\n", 1)
    assert checked == "blurry.yaml: ok: [1, 8, 8] -> [10], 1,370 params, 11,648 MACs"
    decoder = json.JSONDecoder()
    summary, end = decoder.raw_decode(rest)
    schema = json.loads(rest[end:])
    rows = {row["name"]: row for row in summary["layers"]}
    assert (rows["blur"]["type"], rows["blur"]["output"], rows["blur"]["macs"]) == (
        "blur_pool",
        [8, 8, 8],
        8 * 8 * 8 * 9,
    )
    assert (rows["down"]["output"], rows["down"]["macs"], rows["down"]["params"]) == ([8, 4, 4], 8 * 4 * 4 * 9, 0)
    assert rows["shuffle"]["type"] == "group_shuffle"
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid(parse(SPEC).data)  # plugin kinds inside a branch too
    typo = parse(SPEC.replace("name: blur, stride: 1", "name: blur, strides: 1")).data
    assert [e.message for e in validator.iter_errors(typo)] == [
        "Additional properties are not allowed ('strides' was unexpected)"
    ]
    code, out, err = python(venv / "venv/bin/python", "-m", "cnnforge", "check", "blurry.yaml", cwd=venv)
    assert (code, err) == (0, "")


BUILD_AND_TRAIN = """
import sys, torch
from cnnforge import compile_file
from cnnforge.builder import build
from cnnforge.cli import main
compiled = compile_file("blurry.yaml")
model = build(compiled)
out = model(torch.arange(64.0).reshape(1, 1, 8, 8))
blur = model.get_submodule("down")
flat = blur(torch.ones(1, 8, 8, 8))  # a constant image stays constant: the filter sums to 1
same = bool(torch.allclose(flat, torch.ones(1, 8, 4, 4)))
print(type(blur).__module__, tuple(out.shape[1:]) == compiled.output, same, file=sys.stderr)
sys.exit(main(["train", "arch=blurry.yaml", "trainer.epochs=1", "trainer.batch_size=128"]))
"""


def test_plugin_kinds_build_and_train(venv: Path) -> None:
    code, out, err = python(venv / "venv/bin/python", "-c", BUILD_AND_TRAIN, cwd=venv)
    assert code == 0, out + err
    assert "cnnforge_blurpool._torch True True" in err
    (metrics,) = venv.glob("outputs/*/*_blurry/metrics.csv")
    assert len(metrics.read_text().splitlines()) == 2  # the header and one epoch


# --- broken plugins: one line naming the distribution and entry point, no traceback -----------------------------

NOT_A_LAYER = (
    "from typing import Literal\nfrom pydantic import BaseModel\nclass Blur(BaseModel):\n    type: Literal['blur']\n"
)
CONV_AGAIN = (
    "from typing import Literal\nfrom cnnforge.layers import Layer\nclass Conv(Layer):\n    type: Literal['conv']\n"
)
ADD = (
    "from typing import Literal\nfrom cnnforge.layers import Layer, register\n"
    "@register\nclass Add(Layer):\n    type: Literal['add']\n"
)
BROKEN = {  # entry point, the module it names (when not the standard library's), and the end of the line said
    "missing_module": (
        "cnnforge_no_such_plugin",
        None,
        "cannot import it: ModuleNotFoundError: No module named 'cnnforge_no_such_plugin'",
    ),
    "failing_import": (
        "plugin_failing",
        "raise RuntimeError('no GPU\\nfound')",
        "cannot import it: RuntimeError: no GPU; found",
    ),
    "function": ("json:loads", None, "names a function, not a module or a cnnforge.layers.Layer subclass"),
    "not_a_layer": (
        "plugin_blur:Blur",
        NOT_A_LAYER,
        "names the class Blur, not a module or a cnnforge.layers.Layer subclass",
    ),
    "builtin_clash": (
        "plugin_conv:Conv",
        CONV_AGAIN,
        "layer kind 'conv' is already registered by cnnforge.layers.conv.Conv",
    ),
    "structure_word": (
        "plugin_add",
        ADD,
        "layer kind 'add' is a word of the spec format (add, concat, multiply, sequence)",
    ),
}


def installed(folder: Path, case: str) -> Path:
    """`folder`, holding what pip leaves of a distribution broken-plugin 1.0 that declares BROKEN[case]'s entry
    point (its dist-info), and the module the entry point names."""
    entry, module, _ = BROKEN[case]
    dist = folder / "broken_plugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{GROUP}]\nbroken = {entry}\n")
    if module is not None:
        (folder / f"{entry.split(':')[0]}.py").write_text(module)
    return folder


def said(case: str) -> str:
    entry, _, end = BROKEN[case]
    return f"layer plugin 'broken = {entry}' of broken-plugin 1.0 (entry point group {GROUP}): {end}"


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_plugin_is_named_with_what_is_wrong(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(installed(tmp_path, case))
    with pytest.raises(PluginError) as error:
        load(register)
    assert str(error.value) == said(case)


@pytest.mark.parametrize(
    ("command", "case"),
    [
        (["check", LENET], "missing_module"),
        (["summary", LENET], "failing_import"),
        (["schema"], "function"),
        (["train", "arch=lenet", "--cfg", "job"], "builtin_clash"),
    ],
)
def test_a_broken_plugin_stops_every_command_in_one_line(command: list[str], case: str, tmp_path: Path) -> None:
    site_dir = installed(tmp_path / "site", case)
    code, out, err = python(sys.executable, "-m", "cnnforge", *command, cwd=tmp_path, paths=(site_dir,))
    assert (code, out, err) == (1, "", f"cnnforge: error: {said(case)}\n")


# --- a spec names kinds, never code -----------------------------------------------------------------------------

PAYLOAD = "from pathlib import Path\nPath('imported').write_text('a spec imported me')\nclass Thing: pass\n"


def test_a_spec_file_cannot_make_cnnforge_import_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "payload.py").write_text(PAYLOAD)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(tmp_path)
    names = ["payload", "payload:Thing", "payload.Thing", "payload.py", "./payload.py"]
    blocks = "blocks:\n  b:\n    layers: [{type: payload}]\n"
    layers = "".join(f"  - {{type: '{name}'}}\n" for name in names)
    Path("spec.yaml").write_text(f"name: t\ninput: [1, 8, 8]\n{blocks}layers:\n{layers}  - {{type: b}}\n")
    assert [main(["check", "spec.yaml"]), main(["summary", "spec.yaml"])] == [1, 1]
    assert "unknown layer type 'payload:Thing'" in capsys.readouterr().out
    assert main(["schema"]) == 0 and "payload" not in capsys.readouterr().out
    assert "payload" not in sys.modules and not Path("imported").exists()

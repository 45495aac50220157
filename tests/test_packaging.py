"""The wheel carries what an installed cnnforge reads at run time: specs, Hydra configs and the digits."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DATA = ("architectures", "conf", "data")


def test_wheel_holds_every_package_data_file(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("cnnforge-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        path.relative_to(ROOT).as_posix()
        for folder in PACKAGE_DATA
        for path in (ROOT / "cnnforge" / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    expected.add("cnnforge/schema.json")
    assert expected <= names, sorted(expected - names)


def test_top_level_architectures_are_the_shipped_specs() -> None:
    top = ROOT / "architectures"
    assert sorted(p.name for p in top.glob("*.yaml")) == sorted(
        p.name for p in (ROOT / "cnnforge/architectures").glob("*.yaml")
    )
    assert top.resolve() == (ROOT / "cnnforge" / "architectures").resolve()

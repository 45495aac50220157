"""The documentation site builds with `mkdocs build --strict`, so a broken link or a missing page fails the
tests; the README stays a page or two, and the site's home page gives the README's set-up commands."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}


def build(root: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(root / "mkdocs.yml"), "-d", str(site)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    run = build(ROOT, tmp_path / "site")
    assert run.returncode == 0, run.stderr
    pages = {p.relative_to(tmp_path / "site").as_posix() for p in (tmp_path / "site").rglob("index.html")}
    nav = re.findall(r"^  - [^:]+: (\S+)\.md$", (ROOT / "mkdocs.yml").read_text(), re.M)
    assert {"index.html"} | {f"{name}/index.html" for name in nav if name != "index"} <= pages
    assert {p.stem for p in (ROOT / "docs").glob("*.md")} == set(nav)  # every page is in the navigation


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(ROOT / "docs", copy / "docs")
    shutil.copy(ROOT / "mkdocs.yml", copy)
    with open(copy / "docs" / "commands.md", "a") as page:
        page.write("\nSee [the missing page](nowhere.md).\n")
    run = build(copy, tmp_path / "site")
    assert run.returncode != 0
    assert "nowhere.md" in run.stderr


def test_the_readme_fits_a_screen_or_two() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 150


def test_the_home_page_gives_the_readmes_set_up() -> None:
    def set_up(text: str) -> str:
        return text[text.index("## Set-up") : text.index("\n## ", text.index("## Set-up") + 1)]

    assert set_up((ROOT / "docs" / "index.md").read_text()) == set_up((ROOT / "README.md").read_text())

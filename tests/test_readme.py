"""The README's and the docs pages' commands and examples stay true."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
PAGES = sorted((ROOT / "docs").glob("*.md"))
DOCS = "\n".join([README, *(page.read_text() for page in PAGES)])  # every example, wherever it is shown


def _bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", README, re.S)


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci in [block.strip() for block in _bash_blocks()]


def test_readme_lenet_example_is_the_shipped_file() -> None:
    example = re.search(r"```yaml\n(# yaml-language-server: \S+\nname: lenet5\n.*?)```", DOCS, re.S).group(1)
    assert example == (ROOT / "architectures" / "lenet.yaml").read_text()


def test_readme_check_output_is_what_check_prints() -> None:
    shown = re.search(r"```console\n\$ cnnforge check architectures/\n(.*?)```", DOCS, re.S).group(1)
    run = subprocess.run(
        [sys.executable, "-m", "cnnforge", "check", "architectures/"], cwd=ROOT, capture_output=True, text=True
    )
    assert run.returncode == 0
    assert run.stdout == shown


def test_readme_check_of_some_shipped_specs_is_what_check_prints() -> None:
    command, shown = re.search(
        r"```console\n\$ cnnforge check (architectures/\S+\.yaml(?: \S+)*)\n(.*?)```", DOCS, re.S
    ).groups()
    run = subprocess.run(
        [sys.executable, "-m", "cnnforge", "check", *command.split()], cwd=ROOT, capture_output=True, text=True
    )
    assert (run.returncode, run.stdout) == (0, shown)


def test_readme_error_examples_are_what_check_prints(tmp_path: Path) -> None:
    lenet = (ROOT / "architectures" / "lenet.yaml").read_text()
    typo = lenet.replace("shape: [6, 16, 5, 5]", "shape: [16, 16, 5, 5]").replace("  - {type: flatten}\n", "")
    (tmp_path / "lenet-typo.yaml").write_text(typo)
    (tmp_path / "broken.yaml").write_text(
        "name: broken\ninput: [3, 32, 32]\nlayers:\n  - {type: conv, shape: [3, 8, 3, 3], strides: 2}\n"
    )
    for name in ("broken.yaml", "lenet-typo.yaml"):
        shown = re.search(rf"\$ cnnforge check {name}.*?\n(.*?)(?:\$|```)", DOCS, re.S).group(1)
        run = subprocess.run(
            [sys.executable, "-m", "cnnforge", "check", name], cwd=tmp_path, capture_output=True, text=True
        )
        assert run.returncode == 1
        assert run.stdout == shown


def test_readme_sizes_examples_are_what_sizes_prints() -> None:
    block = re.search(r"  ```console\n(  \$ cnnforge sizes .*?)  ```", DOCS, re.S).group(1)
    lines = [line.removeprefix("  ") for line in block.splitlines()]
    commands = [i for i, line in enumerate(lines) if line.startswith("$ ")]
    assert len(commands) == 2
    for start, end in zip(commands, [*commands[1:], len(lines)], strict=True):
        run = subprocess.run(
            [sys.executable, "-m", "cnnforge", *lines[start].split()[2:]], cwd=ROOT, capture_output=True, text=True
        )
        assert run.returncode == 0
        assert run.stdout.splitlines() == lines[start + 1 : end]


EXAMPLES = ROOT / "docs" / "examples"


def test_docs_examples_are_what_cnnforge_prints() -> None:
    """Every console example run on a file of docs/examples/ prints, from there, exactly what the page shows."""
    names = "|".join(re.escape(p.name) for p in EXAMPLES.glob("*.yaml"))
    pattern = rf"^\$ (cnnforge (?:check|sizes|summary) (?:{names}))\n((?:(?!\$ |```).*\n)*)"
    shown = re.findall(pattern, DOCS, re.M)
    assert len(shown) >= 5
    for command, output in shown:
        run = subprocess.run(
            [sys.executable, "-m", *command.split()], cwd=EXAMPLES, capture_output=True, text=True, timeout=60
        )
        assert run.stdout + run.stderr == output, command

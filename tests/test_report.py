"""`cnnforge report`: the HTML page of a one-epoch digits run, what it says when parts of a run are missing, its
errors, and the page in a real browser (headless Chromium): it loads nothing, logs no error and shows it all."""

from __future__ import annotations

import html
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
import torch
from train_helpers import Run, app_folder, digits_logits, read_metrics, torch_scores, train, write_spec

from cnnforge.cli import main
from cnnforge.report.evaluation import Evaluation
from cnnforge.report.page import render
from cnnforge.report.run import RunFolder, SweepFolder
from cnnforge.report.sweep import render as render_sweep
from cnnforge.train.scores import Scores
from cnnforge.train.sweep import Job
from cnnforge.use import load as load_trained

DIGITS_VAL = 359
TINY_TYPES = ["conv", "relu", "maxpool", "flatten", "dropout", "linear"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    folder = tmp_path_factory.mktemp("report")
    write_spec(folder)
    with app_folder(folder):
        run = train("arch=tiny.yaml", "trainer.epochs=1", "trainer.batch_size=32", "optim.lr=0.1")
        assert run.code == 0, run.output
        yield run


@pytest.fixture(scope="module")
def report(trained: Run) -> Path:
    assert main(["report", str(trained.folder)]) == 0
    return trained.folder / "report.html"


class Page(HTMLParser):
    """The parts of a report a test looks at: elements by id, each table's rows of cells, and every URL."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.ids: dict[str, str] = {}
        self.tables: dict[str, list[list[str]]] = {}
        self.urls: list[str] = []
        self.tags: list[str] = []
        self.title = ""
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._in_title = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags.append(tag)
        if "id" in found:
            self.ids[found["id"] or ""] = tag
        self.urls += [value or "" for key, value in attrs if key in ("src", "href", "xlink:href", "action")]
        if tag == "table":
            self._table = found.get("id") or ""
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._in_title:
            self.title += data


def test_report_shows_the_whole_run(trained: Run, report: Path, capsys: pytest.CaptureFixture) -> None:
    page = Page(report.read_text())
    assert page.title == f"tiny: run {trained.folder.parent.name}/{trained.folder.name}"
    head, *summary = page.tables["summary-table"]
    columns = [head.index(name) for name in ("#", "name", "type", "output", "params", "MACs")]
    assert [[row[i] for i in columns] for row in summary] == [
        ["0", "conv0", "conv", "[4, 8, 8]", "40", "2,304"],
        ["1", "relu1", "relu", "[4, 8, 8]", "0", "0"],
        ["2", "maxpool2", "maxpool", "[4, 4, 4]", "0", "0"],
        ["3", "flatten3", "flatten", "[64]", "0", "0"],
        ["4", "dropout4", "dropout", "[64]", "0", "0"],
        ["5", "linear5", "linear", "[10]", "650", "640"],
    ]
    assert page.ids["diagram"] == "figure" and "svg" in page.tags
    assert page.ids["curves"] == "img"
    metrics = page.tables["metrics-table"]
    rows = trained.rows()
    assert metrics[0] == list(rows[0])
    assert metrics[1:] == [list(row.values()) for row in rows]
    confusion = page.tables["confusion-matrix"]
    assert confusion[0] == ["true \\ predicted", *(str(d) for d in range(10))]
    assert [row[0] for row in confusion[1:]] == [str(d) for d in range(10)]
    counts = [[int(v) for v in row[1:]] for row in confusion[1:]]
    assert sum(map(sum, counts)) == DIGITS_VAL
    correct = sum(counts[i][i] for i in range(10))
    assert correct / DIGITS_VAL == pytest.approx(float(rows[-1]["val_acc"]), abs=1e-5)  # one epoch: best is last
    assert "best.pt (after epoch 1) on the digits validation split, 359 samples" in report.read_text()
    top5, counts = torch_scores(*digits_logits(trained.folder / "best.pt"))
    sentence = re.search(r"359 samples: loss [\d.]+, accuracy ([\d.]+), top-5 ([\d.]+)\. Rows", report.read_text())
    assert sentence and float(sentence[1]) == pytest.approx(correct / DIGITS_VAL, abs=6e-5)
    assert float(sentence[2]) == pytest.approx(top5, abs=6e-5)
    head, *per_class = page.tables["per-class"]
    assert head == ["class", "samples", "correct", "accuracy"]
    expected = [[str(c), str(n), str(hit), f"{hit / n:.4f}"] for c, (n, hit) in enumerate(counts)]
    assert per_class == sorted(expected, key=lambda row: float(row[3]))  # the worst first; ties in class order
    assert all(url.startswith(("data:", "#")) for url in page.urls), page.urls  # nothing to fetch: all inline
    assert "<script" not in report.read_text()


def test_report_of_few_classes_and_a_class_without_samples(trained: Run) -> None:
    """Four classes: no top-5 accuracy; class b has no samples, so no accuracy, and comes last."""
    confusion = torch.tensor([[3, 1, 0, 0], [0, 0, 0, 0], [0, 0, 2, 0], [1, 1, 0, 2]])  # rows: the true class
    result = Evaluation(
        trained.folder / "best.pt",
        load_trained(trained.folder / "best.pt").compiled,
        1,
        "digits",
        ["a", "b", "c", "d"],
        10,
        Scores(0.5, 0.7, None, confusion),
    )
    text = render(RunFolder(trained.folder, "data: {name: digits}\n"), result)
    assert "10 samples: loss 0.5000, accuracy 0.7000. Rows are the true classes" in text
    assert Page(text).tables["per-class"][1:] == [
        ["d", "4", "2", "0.5000"],
        ["a", "4", "3", "0.7500"],
        ["c", "2", "2", "1.0000"],
        ["b", "0", "0", "-"],
    ]
    shading = [float(alpha) for alpha in re.findall(r"rgba\(214, 39, 40, ([\d.]+)\)", text)]
    assert shading == pytest.approx([0.5**0.5, 0.25**0.5, 0], abs=5e-4)  # the square root of the share missed


def test_report_replaces_an_earlier_one_and_writes_elsewhere(trained: Run, report: Path, tmp_path: Path, capsys):
    report.write_text("an earlier report")
    capsys.readouterr()
    assert main(["report", str(trained.folder)]) == 0
    assert capsys.readouterr().out == f"{report}\n"
    assert report.read_text().startswith("<!DOCTYPE html>")
    elsewhere = tmp_path / "run.html"
    assert main(["report", str(trained.folder), "-o", str(elsewhere)]) == 0
    assert Page(elsewhere.read_text()).tables.keys() == Page(report.read_text()).tables.keys()
    assert not [p for p in trained.folder.iterdir() if p.name.startswith(".report")]  # no temporary file left


def copy_without(folder: Path, tmp_path: Path, *missing: str) -> Path:
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns(*missing))
    return copy


def test_report_of_a_run_without_checkpoints(trained: Run, tmp_path: Path) -> None:
    folder = copy_without(trained.folder, tmp_path, "*.pt", "report.html")
    assert main(["report", str(folder)]) == 0
    text = (folder / "report.html").read_text()
    page = Page(text)
    assert "This run folder has no checkpoint (best.pt or last.pt), so there is no diagram" in text
    assert "confusion-matrix" not in page.tables and "diagram" not in page.ids
    assert html.escape((folder / "summary.txt").read_text().splitlines()[-1]) in text
    head, *rows = page.tables["summary-table"]  # the summary as the run wrote it
    assert head[:2] == ["#", "name"] and [row[1] for row in rows] == [f"{t}{i}" for i, t in enumerate(TINY_TYPES)]
    assert {"metrics-table"} <= page.tables.keys() and page.ids["curves"] == "img"


def test_report_of_a_run_with_a_broken_checkpoint(trained: Run, tmp_path: Path) -> None:
    folder = copy_without(trained.folder, tmp_path, "report.html", "curves.png", "metrics.csv")
    (folder / "best.pt").write_text("not a checkpoint")
    assert main(["report", str(folder)]) == 0
    text = (folder / "report.html").read_text()
    assert f"best.pt could not be evaluated: {folder / 'best.pt'}: not a readable checkpoint" in text
    assert "No curves.png in this run." in text and "No metrics.csv in this run." in text


def test_report_errors(trained: Run, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "file.txt").write_text("")
    cases = {
        tmp_path / "nowhere": "no such folder",
        tmp_path / "file.txt": "not a folder; give a run folder, outputs/<date>/<time>_<arch>/",
        tmp_path: "neither a run folder (it has no config.yaml) nor a sweep folder (no sweep.csv); give one that "
        "cnnforge train made",
    }
    for folder, message in cases.items():
        assert main(["report", str(folder)]) == 1
        assert capsys.readouterr() == ("", f"cnnforge report: error: {folder}: {message}\n")
    unwritable = tmp_path / "no" / "such" / "report.html"
    assert main(["report", str(trained.folder), "-o", str(unwritable)]) == 1
    assert capsys.readouterr().err == f"cnnforge report: error: {unwritable}: cannot write: No such file or directory\n"


# --- a sweep ---------------------------------------------------------------------------------------------------

SWEEP_LRS = ("0.5", "0.1", "0.01")


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """A sweep of three learning rates, two epochs each, on digits."""
    folder = tmp_path_factory.mktemp("sweep")
    write_spec(folder)
    with app_folder(folder):
        run = train(
            "-m", "arch=tiny.yaml", "trainer.epochs=2", "trainer.batch_size=64", f"optim.lr={','.join(SWEEP_LRS)}"
        )
        assert run.code == 0, run.output
        yield run


@pytest.fixture(scope="module")
def sweep_report(swept: Run) -> Path:
    root = swept.folders[0].parent
    assert main(["report", str(root)]) == 0
    return root / "report.html"


def test_report_of_a_sweep_compares_its_jobs(swept: Run, sweep_report: Path) -> None:
    root = sweep_report.parent
    jobs = read_metrics(root / "sweep.csv")
    assert [(job["folder"], job["status"]) for job in jobs] == [
        (f"{n}_lr={lr}", "ok") for n, lr in enumerate(SWEEP_LRS)
    ]
    text = sweep_report.read_text()
    page = Page(text)
    assert page.title == f"sweep {root.parent.name}/{root.name}"
    head, *rows = page.tables["sweep-table"]
    assert head == ["rank", "job", "settings", "best val acc", "epochs", "seconds", "status", "report"]
    best_first = sorted(jobs, key=lambda job: (-float(job["best_val_acc"]), int(job["job"])))
    settings = {job["job"]: f"optim.lr={lr}" for job, lr in zip(jobs, SWEEP_LRS, strict=True)}
    assert rows == [
        [str(rank), job["job"], settings[job["job"]], job["best_val_acc"], "2", job["seconds"], "ok", job["folder"]]
        for rank, job in enumerate(best_first, 1)
    ]
    assert (
        "every job: arch=tiny.yaml trainer.epochs=2 trainer.batch_size=64" in text and "3 jobs: 3 ok, 0 failed" in text
    )
    for job in jobs:
        metrics = read_metrics(root / job["folder"] / "metrics.csv")
        assert job["best_val_acc"] == max((row["val_acc"] for row in metrics), key=float)
    assert page.ids["sweep-curves"] == "img" and "<script" not in text
    links = [url for url in page.urls if not url.startswith("data:")]
    assert sorted(links) == sorted(f"{job['folder'].replace('=', '%3D')}/report.html" for job in jobs)
    for link in links:  # each job's own report, written too
        job_page = Page((root / unquote(link)).read_text())
        assert job_page.title == f"tiny: run {root.name}/{Path(unquote(link)).parent.name}"
        assert "confusion-matrix" in job_page.tables


def test_report_of_a_sweep_with_a_failed_job(swept: Run, tmp_path: Path) -> None:
    root = copy_without(swept.folders[0].parent, tmp_path, "report.html")
    Job(root, 3, root / "3_lr=-1", ["optim.lr=-1"]).finished("optim.lr=-1: must be <greater> than 0")
    out = tmp_path / "elsewhere" / "sweep.html"
    out.parent.mkdir()
    assert main(["report", str(root), "-o", str(out)]) == 0
    text = out.read_text()
    *_, last = Page(text).tables["sweep-table"]
    assert last == ["4", "3", "optim.lr=-1", "", "0", last[5], "failed: optim.lr=-1: must be <greater> than 0", ""]
    assert "must be &lt;greater&gt; than 0" in text and "4 jobs: 3 ok, 1 failed" in text
    links = [url for url in Page(text).urls if not url.startswith("data:")]
    assert len(links) == 3 and all((out.parent / unquote(link)).is_file() for link in links)  # relative to OUT


def test_jobs_without_an_accuracy_come_last(tmp_path: Path) -> None:
    def job(n: str, accuracy: str, status: str = "ok") -> dict[str, str]:
        fields = {"overrides": f"optim.lr={n}", "epochs": "1" if accuracy else "0", "seconds": "1.0", "error": ""}
        return {"job": n, "folder": f"{n}_lr={n}", "best_val_acc": accuracy, "status": status, **fields}

    jobs = [job("0", "", "failed"), job("1", "0.5"), job("2", "0.75"), job("3", "0.5"), job("4", "", "failed")]
    text = render_sweep(SweepFolder(tmp_path, jobs), {}, tmp_path)
    assert [row[1] for row in Page(text).tables["sweep-table"][1:]] == ["2", "1", "3", "0", "4"]
    assert "No job has finished an epoch (no metrics.csv in the job folders)." in text


def test_report_of_a_sweep_without_a_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "multirun.yaml").write_text("hydra: {}\n")
    assert main(["report", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (
        f"cnnforge report: error: {tmp_path}: a sweep folder without sweep.csv: none of its jobs has finished yet, "
        "or a cnnforge older than sweep tables ran it\n"
    )
    (tmp_path / "sweep.csv").write_text("job,folder\n0,0_lr=0.1\n")
    assert main(["report", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (
        f"cnnforge report: error: {tmp_path / 'sweep.csv'}: not a sweep table of cnnforge train: no column "
        "overrides, best_val_acc, epochs, seconds, status, error\n"
    )


# --- in a browser ----------------------------------------------------------------------------------------------

BROWSER_FLAGS = [
    "--headless=new",
    "--no-sandbox",  # as root, Chromium runs only without its sandbox
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Headless Chromium through chromedriver, its console logged. Skipped where neither is installed, unless
    CNNFORGE_BROWSER=required (CI sets it, after installing them)."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        chromium = None
    if not (chromium and driver):
        if os.environ.get("CNNFORGE_BROWSER") == "required":
            pytest.fail("CNNFORGE_BROWSER=required, but chromium, chromedriver or selenium is missing")
        pytest.skip("needs chromium, chromedriver and selenium (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*BROWSER_FLAGS, f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path_factory.mktemp('chromium'))}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    session = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield session
    finally:
        session.quit()


def load(browser, page: Path) -> list[dict]:
    """Open `page` and return what its console logged."""
    browser.get(page.resolve().as_uri())
    assert browser.execute_script("return document.readyState") == "complete"
    return browser.get_log("browser")


def test_the_browser_catches_console_errors(browser, tmp_path: Path) -> None:
    """The check below would see a broken page: a missing image and a script error both log errors."""
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><title>x</title><img src="missing.png"><script>undefined_name()</script>')
    messages = [entry["message"] for entry in load(browser, page) if entry["level"] == "SEVERE"]
    assert any("missing.png" in m for m in messages) and any("undefined_name" in m for m in messages), messages


def test_report_in_a_browser(browser, trained: Run, report: Path) -> None:  # skipped before training
    from selenium.webdriver.common.by import By

    log = load(browser, report)
    assert [entry for entry in log if entry["level"] in ("SEVERE", "WARNING")] == []
    assert browser.title == f"tiny: run {trained.folder.parent.name}/{trained.folder.name}"
    assert browser.find_element(By.TAG_NAME, "h1").text == browser.title
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0  # loads nothing

    rows = browser.find_elements(By.CSS_SELECTOR, "#summary-table tbody tr")
    assert [row.find_elements(By.TAG_NAME, "td")[1].text for row in rows] == [
        "conv0", "relu1", "maxpool2", "flatten3", "dropout4", "linear5"
    ]  # fmt: skip
    diagram = browser.find_element(By.CSS_SELECTOR, "#diagram svg")
    assert diagram.rect["width"] > 300 and diagram.rect["height"] > 100
    assert diagram.is_displayed()
    curves = browser.find_element(By.ID, "curves")
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", curves) == 1000
    assert curves.rect["width"] > 300 and curves.is_displayed()

    confusion = browser.find_element(By.ID, "confusion-matrix")
    assert len(confusion.find_elements(By.CSS_SELECTOR, "thead th")) == 11
    body = confusion.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(body) == 10
    assert all(len(row.find_elements(By.TAG_NAME, "td")) == 10 for row in body)
    assert sum(int(cell.text) for cell in confusion.find_elements(By.CSS_SELECTOR, "tbody td")) == DIGITS_VAL
    metrics = browser.find_elements(By.CSS_SELECTOR, "#metrics-table tbody tr")
    assert len(metrics) == 1 and re.fullmatch(r"1 .*", metrics[0].text)

    per_class = browser.find_element(By.ID, "per-class")
    assert per_class.is_displayed() and per_class.location["y"] > confusion.location["y"]  # under the matrix
    accuracy = [row.find_elements(By.TAG_NAME, "td")[3] for row in per_class.find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert len(accuracy) == 10 and [float(cell.text) for cell in accuracy] == sorted(float(c.text) for c in accuracy)
    worst = accuracy[0].value_of_css_property("background-color")  # after one epoch, some class is missed
    assert float(accuracy[0].text) < 1 and worst.startswith("rgba(214, 39, 40, ") and worst != "rgba(214, 39, 40, 0)"


def test_sweep_report_in_a_browser(browser, swept: Run, sweep_report: Path) -> None:  # skipped before the sweep
    from selenium.webdriver.common.by import By

    log = load(browser, sweep_report)
    assert [entry for entry in log if entry["level"] in ("SEVERE", "WARNING")] == []
    root = sweep_report.parent
    assert browser.title == f"sweep {root.parent.name}/{root.name}"
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0  # loads nothing
    rows = browser.find_elements(By.CSS_SELECTOR, "#sweep-table tbody tr")
    assert [row.find_elements(By.TAG_NAME, "td")[0].text for row in rows] == ["1", "2", "3"]
    assert rows[0].find_element(By.TAG_NAME, "td").value_of_css_property("font-weight") == "700"  # best: bold
    curves = browser.find_element(By.ID, "sweep-curves")
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", curves) == 1000
    assert curves.rect["width"] > 300 and curves.is_displayed()
    link = rows[0].find_element(By.TAG_NAME, "a")
    folder = link.text
    link.click()  # to the best job's own report
    assert browser.title == f"tiny: run {root.name}/{folder}"
    assert [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")] == []
    assert browser.find_element(By.ID, "confusion-matrix").is_displayed()

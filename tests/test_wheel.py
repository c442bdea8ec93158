"""The built wheel is complete: every package with its data files (presets, the demo's sample,
templates) is inside, and installed in a fresh venv it runs from any directory.

The wheel is built offline from a copy of the source (no build artefacts in the repository),
installed with ``--no-deps`` into a new venv that borrows this interpreter's dependencies through
a ``.pth`` file, and its ``carat-cli`` is run from an empty folder without ``PYTHONPATH``, so
nothing can come from the source tree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
NOT_SHIPPED = {"tests", "bench"}  # packages of the repository that are not the product
TOP_FILES = ("pyproject.toml", "README.md", "LICENSE")


def source_packages() -> list[Path]:
    """The repository's top-level packages (folders with an ``__init__.py``) that ship."""
    return sorted(
        p.parent
        for p in REPO.glob("*/__init__.py")
        if p.parent.name not in NOT_SHIPPED and not p.parent.name.startswith(".")
    )


def expected_files() -> set[str]:
    """Every file the wheel must hold: each package's files (code and data) and cli.py."""
    wanted = {p.name for p in REPO.glob("*.py")}
    for package in source_packages():
        wanted |= {
            f.relative_to(REPO).as_posix()
            for f in package.rglob("*")
            if f.is_file() and "__pycache__" not in f.parts
        }
    return wanted


def copy_source(target: Path) -> Path:
    """The files a build reads, copied so that the build's own files stay out of the repo."""
    target.mkdir()
    for name in TOP_FILES:
        shutil.copy(REPO / name, target)
    for module in REPO.glob("*.py"):
        shutil.copy(module, target)
    for package in source_packages():
        shutil.copytree(
            package, target / package.name, ignore=shutil.ignore_patterns("__pycache__")
        )
    return target


def run(command: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    source = copy_source(work / "src")
    dist = work / "dist"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    run([*build, "--no-index", "--quiet", "-w", str(dist), str(source)], cwd=work)
    [built] = dist.glob("carat-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding only the wheel; its dependencies come from this interpreter's
    site-packages (added by a .pth file after the install, so pip sees no carat there)."""
    root = tmp_path_factory.mktemp("venv") / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(root)], cwd=root.parent)
    python = root / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    run([*pip, "install", "--no-deps", "--no-index", "--quiet", str(wheel)], cwd=root.parent)
    site = run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=root
    )
    Path(site.stdout.strip(), "_carat_test_deps.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n"
    )
    return root


@pytest.fixture()
def elsewhere(tmp_path: Path) -> Path:
    """An empty working directory far from the repository."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


def test_wheel_holds_every_package_and_data_file(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = expected_files() - names
    assert not missing, f"not in the wheel: {sorted(missing)}"
    assert {"configs/paper-mosei-aligned.yaml", "configs/demo.yaml"} <= names
    sample = {n for n in names if n.startswith("pipeline/sample_data/")}
    assert "pipeline/sample_data/labels.csv" in sample
    assert "pipeline/sample_data/recording/interview.mp4" in sample
    assert sum(n.endswith(".mp4") for n in sample) >= 30
    assert not {n for n in names if n.startswith(("tests/", "bench/"))}
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "\ncarat-cli = " in "\n" + zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_code_is_the_wheels(venv: Path, elsewhere: Path) -> None:
    modules = ["cli", *(p.name for p in source_packages())]
    probe = f"import {', '.join(modules)}\nfor m in ({', '.join(modules)}): print(m.__file__)"
    result = run([str(venv / "bin" / "python"), "-c", probe], cwd=elsewhere)
    paths = [Path(line) for line in result.stdout.splitlines()]
    assert len(paths) == len(modules) >= 5
    assert all(path.is_relative_to(venv) for path in paths), paths


def test_cli_help_runs_from_any_directory(venv: Path, elsewhere: Path) -> None:
    result = run([str(venv / "bin" / "carat-cli"), "--help"], cwd=elsewhere)
    assert "demo" in result.stdout and "train" in result.stdout


def test_paper_preset_trains_from_the_installed_package(venv: Path, elsewhere: Path) -> None:
    cli = str(venv / "bin" / "carat-cli")
    sizes = ["--n-train", "8", "--n-valid", "4", "--n-test", "4", "--seq-len", "6"]
    run([cli, "synth", "--out", "synth", *sizes], cwd=elsewhere)
    train = [cli, "train", "--dataset", "synth/train_valid_test.pt"]
    train += ["--config", "paper-mosei-aligned", "--epochs", "1", "--batch-size", "4"]
    run([*train, "--out", "run"], cwd=elsewhere)
    resolved = yaml.safe_load((elsewhere / "run" / "config.yaml").read_text())
    paper = yaml.safe_load((REPO / "configs" / "paper-mosei-aligned.yaml").read_text())
    assert (
        resolved["model"]["layers"]
        == paper["model"]["layers"]
        == {
            "text": 6,
            "visual": 4,
            "audio": 4,
        }
    )
    assert resolved["optim"]["name"] == "bertadam"
    assert (elsewhere / "run" / "model" / "model.safetensors").is_file()


def test_demo_and_predict_run_from_the_installed_sample(venv: Path, elsewhere: Path) -> None:
    cli = str(venv / "bin" / "carat-cli")
    result = run([cli, "demo", "--out", "demo", "--epochs", "1"], cwd=elsewhere, timeout=300)
    site = str(venv / "lib")
    assert f"extracting features of {site}" in result.stdout  # the sample inside the venv
    assert "of 11 utterances get exactly their true labels" in result.stdout
    out = elsewhere / "demo"
    assert (out / "model" / "model.safetensors").is_file()
    assert (out / "predictions.json").is_file() and (out / "timeline" / "report.html").is_file()
    [clip] = venv.glob("lib/python*/site-packages/pipeline/sample_data/held_out/new_sad.mp4")
    predict = [cli, "predict", str(clip), "--model", "demo/model", "--cache", "demo/features"]
    [prediction] = json.loads(run([*predict, "--json"], cwd=elsewhere).stdout)
    assert prediction["cached"] is True  # the demo's features, found through the model's recipe
    assert [label["label"] for label in prediction["labels"]] == ["happy", "sad", "surprise"]

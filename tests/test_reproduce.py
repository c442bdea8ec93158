"""`carat-cli reproduce` on synthetic MOSEI: plan, resumable jobs, shards and the report."""

import csv
import io
import json

import numpy as np
import pytest
from click.testing import CliRunner

from carat.config import list_presets
from carat.data import make_synthetic
from carat.errors import CaratError
from carat.reproduce import METRICS, plan, published_rows
from cli import main
from pipeline import reproduce as repro

TINY = (
    "model.layers={text: 1, visual: 1, audio: 1}",
    "model.hidden=32",
    "model.heads=2",
    "model.intermediate=32",
    "model.latent=16",
    "contrastive.queue_size=64",
    "train.batch_size=16",
    "train.epochs=2",
    "train.num_threads=1",
)
PRESETS = ("paper-mosei-aligned", "ablation-no-shuffle")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    make_synthetic(folder / "train_valid_test.pt", 48, 24, 24, seed=2, seq_len=10)
    return folder


def test_every_published_row_runs_an_existing_preset():
    rows, source = published_rows()
    assert "AAAI 2024" in source
    assert {row.preset for row in rows} <= set(list_presets())
    assert {row.table for row in rows} == {1, 2, 3} and len(rows) == 15
    assert all(not row.verified for row in rows)  # nothing could be checked against the paper


def test_plan_leaves_out_rows_whose_files_are_missing(data_dir):
    full = plan(data_dir, [1, 2, 3])
    assert [row.preset for row in full.rows][0] == "paper-mosei-aligned"
    assert len(full.jobs) == 3 * len(full.rows) == 3 * 13  # aligned + 12 ablations
    assert "mosei_senti_data_noalign.pkl not in" in full.skipped["CMU-MOSEI unaligned"]
    assert "no M3ED file" in full.skipped["M3ED"]
    with pytest.raises(CaratError, match="no paper table row runs"):
        plan(data_dir, [1], presets=("paper-mosei-typo",))
    with pytest.raises(CaratError, match="no benchmark file for any row"):
        plan(data_dir / "nowhere", [1])


def test_shards_split_the_jobs_without_overlap(data_dir, tmp_path):
    shares = [
        {job.name for job in repro.prepare(data_dir, tmp_path, [1, 2], f"{i}/3", TINY).mine}
        for i in range(3)
    ]
    everything = {job.name for job in plan(data_dir, [1, 2]).jobs}
    assert set.union(*shares) == everything and sum(map(len, shares)) == len(everything)


def test_runs_then_skips_finished_jobs_and_reports_mean_and_std(data_dir, tmp_path):
    out = tmp_path / "repro"
    state = repro.prepare(data_dir, out, [1, 2], overrides=TINY, presets=PRESETS)
    assert len(state.mine) == 4 and not state.finished_before and state.estimate_s > 0
    repro.run(state, data_dir, out, TINY)
    assert len(state.ran) == 4 and not state.failed

    again = repro.prepare(data_dir, out, [1, 2], overrides=TINY, presets=PRESETS)
    assert len(again.finished_before) == 4 and again.estimate_s == 0.0
    repro.run(again, data_dir, out, TINY)
    assert not again.ran  # nothing trained twice

    rows = list(csv.DictReader(io.StringIO((out / "reproduction.csv").read_text())))
    assert len(rows) == len(PRESETS) * len(METRICS)
    f1 = next(r for r in rows if r["preset"] == "paper-mosei-aligned" and r["metric"] == "micro_f1")
    per_seed = [
        json.loads((out / "runs" / f"paper-mosei-aligned-s{s}" / "metrics.json").read_text())
        for s in (1, 2)
    ]
    values = [m["test"]["micro_f1"]["mean"] for m in per_seed]
    assert float(f1["mean"]) == pytest.approx(np.mean(values), abs=1e-4)
    assert float(f1["std"]) == pytest.approx(np.std(values, ddof=1), abs=1e-4)
    assert float(f1["published"]) == 0.581 and f1["published_verified"] == "False"
    assert float(f1["difference"]) == pytest.approx(float(f1["mean"]) - 0.581, abs=2e-4)
    report = (out / "reproduction.md").read_text()
    assert "| CMU-MOSEI aligned | `paper-mosei-aligned` | 2/2 |" in report
    assert "| (12) w/o shuffle | `ablation-no-shuffle` | 2/2 |" in report
    assert "authors' Jaccard" in report and "(paper 0.581*," in report


def test_cli_dry_run_prints_the_plan_and_the_estimate(data_dir, tmp_path):
    args = ["reproduce", "--data-dir", str(data_dir), "--out", str(tmp_path / "r"), "--seeds", "2"]
    args += ["--presets", ",".join(PRESETS), "--dry-run"]
    for item in TINY:
        args += ["--set", item]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "2 rows x 2 seeds = 4 runs; this shard: 4, 0 already finished" in result.output
    assert "estimated time for the 4 runs left:" in result.output
    assert not (tmp_path / "r" / "reproduction.md").exists()
    bad = CliRunner().invoke(main, ["reproduce", "--data-dir", str(tmp_path), "--out", "x"])
    assert bad.exit_code == 2 and bad.output.count("\n") == 1

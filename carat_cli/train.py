"""Model commands: `synth` (planted data), `train`, `evaluate` and `explain` a saved model."""

from __future__ import annotations

import click

from carat_cli.common import examples, user_errors
from carat_cli.options import (
    batch_size_option,
    dataset_options,
    device_option,
    seeds_option,
    stacked,
)


@click.command(
    epilog=examples(
        "carat-cli synth --out syn",
        "carat-cli synth --out data --seq-len 30 --seed 3",
    )
)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed of the data.")
@click.option("--n-train", type=click.IntRange(min=1), default=600, show_default=True)
@click.option("--n-valid", type=click.IntRange(min=1), default=150, show_default=True)
@click.option("--n-test", type=click.IntRange(min=1), default=300, show_default=True)
@click.option(
    "--seq-len", type=click.IntRange(min=4), default=60, show_default=True, help="Steps per clip."
)
@user_errors
def synth(out: str, seed: int, n_train: int, n_valid: int, n_test: int, seq_len: int) -> None:
    """Write the built-in synthetic MOSEI-shaped dataset as OUT/train_valid_test.pt (clips per
    split: --n-train, --n-valid, --n-test)."""
    from pathlib import Path

    from carat.data import make_synthetic

    info = make_synthetic(
        Path(out) / "train_valid_test.pt", n_train, n_valid, n_test, seed=seed, seq_len=seq_len
    )
    sizes = ", ".join(f"{split} {n}" for split, n in info.sizes.items())
    counts = ", ".join(f"{label} {n}" for label, n in info.label_counts.items())
    click.echo(f"wrote {info.path} ({info.path.stat().st_size / 1e6:.1f} MB)")
    click.echo(f"clips:  {sizes}; {info.seq_len} steps, text 300 / visual 35 / audio 74 dims")
    click.echo(f"labels: {counts}")
    click.echo(f"planted truth (each label's carrier modality): {info.planted_path}")
    click.echo(f"train on it: carat-cli train --dataset mosei --data-dir {out} --out RUN_DIR")


@click.command(
    epilog=examples(
        "carat-cli train --dataset dataset/ --out runs/mine",
        "carat-cli train --dataset mosei --data-dir data/ --config paper-mosei-aligned --out run",
        "carat-cli train --dataset mosei --data-dir syn --config synthetic --seeds 1,2,3 "
        "--set model.modality_dropout=0.3 --out runs/a",
        "torchrun --no-python --nproc-per-node 4 carat-cli train --dataset mosei --out runs/ddp",
    )
)
@dataset_options
@click.option("--config", "config", help="Preset name or YAML file [default: the dataset's].")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Config override.")
@click.option("--epochs", type=click.IntRange(min=1), help="Override train.epochs.")
@batch_size_option(shown="train.batch_size")
@seeds_option
@device_option(default=None, shown="train.device")
@click.option(
    "--arch",
    type=click.Choice(["carat", "early-fusion"]),
    help="Model: CARAT or the early-fusion baseline (sets model.architecture) [carat].",
)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run directory.")
@user_errors
def train(
    dataset: str,
    data_dir: str | None,
    config: str | None,
    overrides: tuple[str, ...],
    epochs: int | None,
    batch_size: int | None,
    seeds: list[int] | None,
    device: str | None,
    arch: str | None,
    out: str,
) -> None:
    """Train a model (best epoch on validation, test scored once); resumes an interrupted run."""
    from carat.config import load_config
    from carat.data import load_dataset
    from carat.metrics import format_table
    from carat.train import DEFAULT_PRESETS, resolve_run_config, run_training

    overrides = (*overrides, *([f"model.architecture={arch}"] if arch else []))
    # keys and values first: a typo costs a second, not a benchmark file's conversion
    load_config(config or DEFAULT_PRESETS.get(dataset), list(overrides))
    data = load_dataset(dataset, data_dir)
    cfg = resolve_run_config(
        data,
        config,
        overrides,
        dataset_arg=dataset,
        epochs=epochs,
        batch_size=batch_size,
        device=device,
    )
    result = run_training(data, cfg, out, seeds=seeds)
    if not result.is_main:  # other ranks of a torchrun job stay quiet
        return
    click.echo(f"run directory: {result.run_dir}")
    click.echo(f"model:         {result.model_dir}")
    click.echo(f"metrics:       {result.run_dir / 'metrics.json'}")
    click.echo(f"plots:         {result.run_dir / 'plots'}")
    seeds_text = ", ".join(str(s) for s in result.seeds)
    click.echo(f"\ntest metrics (seeds {seeds_text}; best seed {result.best_seed}):")
    click.echo(format_table(result.summary["test"]))


model_on_split = stacked(
    click.argument("model_dir", type=click.Path(file_okay=False)),
    dataset_options,
    click.option(
        "--split", type=click.Choice(["train", "valid", "test"]), default="test", show_default=True
    ),
    device_option(default="auto"),
    batch_size_option(shown="the model's"),
)


@click.command(
    epilog=examples(
        "carat-cli evaluate runs/mine/model --dataset dataset/",
        "carat-cli evaluate synrun/model --dataset mosei --data-dir syn --split valid",
    )
)
@model_on_split
@user_errors
def evaluate(
    model_dir: str,
    dataset: str,
    data_dir: str | None,
    split: str,
    device: str,
    batch_size: int | None,
) -> None:
    """Score a saved model on one split, at the model's own threshold."""
    from carat.data import load_dataset
    from carat.evaluate import evaluate_model
    from carat.metrics import format_table

    data = load_dataset(dataset, data_dir)
    metrics = evaluate_model(model_dir, data, split=split, batch_size=batch_size, device=device)
    click.echo(
        f"{model_dir} on {data.name}/{split} ({metrics['num_samples']} samples, "
        f"threshold {metrics['threshold']:.2f}):"
    )
    click.echo(format_table(metrics))


@click.command(
    epilog=examples(
        "carat-cli explain runs/mine/model --dataset dataset/",
        "carat-cli explain run/model --dataset mosei --data-dir data --out explained",
        "carat-cli explain run/model --dataset mosei --data-dir data --json > explain.json",
    )
)
@model_on_split
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Folder for attribution_map.png (heat map) and explain.json.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@user_errors
def explain(
    model_dir: str,
    dataset: str,
    data_dir: str | None,
    split: str,
    device: str,
    batch_size: int | None,
    out: str | None,
    as_json: bool,
) -> None:
    """Which modality carries each label: per label, the mean contribution of each modality
    over the split's positives, beside the max-pool winner share (the paper's Figure 4); on
    planted data (`carat-cli synth`), how often each names the planted modality."""
    import json
    from pathlib import Path

    from carat.data import load_dataset
    from carat.explain import explain_model, format_explain
    from carat.plots import plot_attribution_map

    data = load_dataset(dataset, data_dir)
    result = explain_model(model_dir, data, split=split, batch_size=batch_size, device=device)
    record = result.to_dict()
    if out is not None:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "explain.json").write_text(json.dumps(record, indent=2) + "\n")
        plot_attribution_map(result, folder / "attribution_map.png")
    if as_json:
        click.echo(json.dumps(record, indent=2))
        return
    click.echo(f"{model_dir} on {data.name}/{split} ({result.num_samples} samples):")
    click.echo(format_explain(result))
    if out is not None:
        click.echo(f"wrote {Path(out) / 'attribution_map.png'} and {Path(out) / 'explain.json'}")


commands = [synth, train, evaluate, explain]

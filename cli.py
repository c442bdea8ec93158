"""carat-cli: the root command group; the commands live in ``carat_cli/``, one module per group."""

from __future__ import annotations

import logging

import click

from carat_cli import align, demo, extract, predict, reproduce, train
from carat_cli.common import examples


@click.group(
    epilog=examples(
        "carat-cli demo",
        "carat-cli extract videos/ --out features/",
        "carat-cli align features/ --labels labels.csv --out dataset/",
        "carat-cli train --dataset dataset/ --out runs/mine",
        "carat-cli predict interview.mp4 --model runs/mine/model --report report.html",
    )
)
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """CARAT multi-modal multi-label emotion recognition, from raw video to predictions."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


for group in (demo, extract, align, train, reproduce, predict):
    for command in group.commands:
        main.add_command(command)


if __name__ == "__main__":
    main()

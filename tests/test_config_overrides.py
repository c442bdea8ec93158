"""Overrides given on the command line take the type of the field they set."""

import pytest

from carat.config import ConfigError, load_config


def test_override_takes_field_type():
    cfg = load_config(
        "paper-mosei-aligned",
        ["optim.lr=5e-3", "train.epochs=3.0", "model.dropout=0", "model.layers.text=2"],
    )
    assert cfg.optim.lr == pytest.approx(0.005) and isinstance(cfg.optim.lr, float)
    assert cfg.train.epochs == 3 and isinstance(cfg.train.epochs, int)
    assert cfg.model.dropout == 0.0 and isinstance(cfg.model.dropout, float)
    assert cfg.model.layers == {"text": 2, "visual": 4, "audio": 4}


def test_threshold_accepts_tune_or_number():
    assert load_config(None, ["eval.threshold=tune"]).eval.threshold == "tune"
    assert load_config(None, ["eval.threshold=0.4"]).eval.threshold == pytest.approx(0.4)


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epochs=many", "needs a number"),
        ("model.no_such_key=1", "unknown config key"),
        ("optim.lr", "section.key=value"),
    ],
)
def test_bad_override_is_refused_by_name(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])

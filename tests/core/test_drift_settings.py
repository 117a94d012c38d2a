"""``drift:`` in opsctl.yaml: parsed with its defaults, and bad settings name their key path."""

from __future__ import annotations

import pytest

from opsctl.core.config import parse_config
from opsctl.core.drift_settings import DriftSettings
from opsctl.errors import ConfigError


def drift_of(spec) -> dict:
    return parse_config({"project": "p", "drift": spec}).drift


def test_settings_and_defaults():
    parsed = drift_of(
        {
            "./data/incoming/batch.csv": {
                "reference": "monitor/churn.profile.json",
                "columns": ["tenure", "plan", "tenure"],
                "method": "psi",
                "threshold": 0.2,
                "share": 0.3,
            },
            "data/b.csv": {"reference": "data/a.csv"},
        }
    )
    assert parsed["data/incoming/batch.csv"] == DriftSettings(
        "data/incoming/batch.csv", "monitor/churn.profile.json", ("tenure", "plan"), "psi", 0.2, 0.3
    )
    assert parsed["data/b.csv"] == DriftSettings("data/b.csv", "data/a.csv")
    assert parsed["data/b.csv"].method == "auto" and parsed["data/b.csv"].threshold is None
    assert parse_config({"project": "p"}).drift == {}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"d.csv": {}}, "drift.d.csv.reference: expected a dataset path or a profile file"),
        ({"d.csv": {"reference": "../r.csv"}}, "drift.d.csv.reference: expected a relative path in the project"),
        ({"/d.csv": {"reference": "r.csv"}}, "drift./d.csv: expected a relative path in the project"),
        ({"d.csv": {"reference": "r.csv", "method": "kl"}}, "drift.d.csv.method: expected one of auto, ks, chi2"),
        ({"d.csv": {"reference": "r.csv", "threshold": "low"}}, "drift.d.csv.threshold: expected a number"),
        ({"d.csv": {"reference": "r.csv", "threshold": 0}}, "drift.d.csv.threshold: expected a number above 0"),
        ({"d.csv": {"reference": "r.csv", "share": 1.5}}, "drift.d.csv.share: expected a share of the columns"),
        ({"d.csv": {"reference": "r.csv", "columns": "tenure"}}, "drift.d.csv.columns: expected a list of column"),
        ({"d.csv": {"reference": "r.csv", "window": 7}}, "unknown key 'drift.d.csv.window'"),
        (["d.csv"], "drift: expected a mapping"),
    ],
)
def test_bad_settings_name_the_key(spec, message):
    with pytest.raises(ConfigError) as error:
        drift_of(spec)
    assert message in str(error.value)

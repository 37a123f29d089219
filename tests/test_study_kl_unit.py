"""The study's KL unit: nats by default (column ``kl``), bits on request (column ``kl_bits``).

Ground truth for the bits: the nats value of the same run divided by ln 2 in Python
(1 nat = 1/ln 2 bits), and a hand value (KL of (1/2, 1/2) from (1/4, 3/4) is
(1/2) log2(4/3) bits).
"""

import csv
import json
import math

import numpy as np
import pytest

from refcomp import ParameterError
from refcomp.cli import main
from refcomp.metrics import kl_in_unit, mean_kl
from refcomp.study import run_study
from refcomp.study.report import write_report
from refcomp.study.run import check_study

from test_study import small_data, small_model


def test_kl_in_unit_hand_values():
    p = np.log(np.array([[0.5, 0.5]]))
    q = np.log(np.array([[0.25, 0.75]]))
    want_bits = 0.5 * math.log2(4 / 3)
    assert mean_kl(p, q, unit="bits") == pytest.approx(want_bits, rel=1e-15)
    assert kl_in_unit(math.log(2), "bits") == 1.0
    assert kl_in_unit(0.25, "nats") == 0.25
    with pytest.raises(ParameterError, match="unit.*'shannons'"):
        kl_in_unit(1.0, "shannons")


def test_run_study_kl_bits_is_nats_over_ln2_in_a_named_column(tmp_path):
    m, (x, y) = small_model(), small_data()
    kw = dict(methods=("uniform",), bits=(2, 3), adaptive_bits=(1, 2), progress=False)
    nats = run_study(m, x, y, **kw)
    bits = run_study(m, x, y, kl_unit="bits", **kw)
    assert "kl_unit" not in nats["settings"] and bits["settings"]["kl_unit"] == "bits"
    assert len(nats["runs"]) == len(bits["runs"]) > 0
    for a, b in zip(nats["runs"], bits["runs"]):
        assert "kl" in a and "kl_bits" not in a
        assert "kl" not in b and b["kl_bits"] == a["kl"] / math.log(2)
        assert list(b) == [("kl_bits" if k == "kl" else k) for k in a]   # same place
        assert {k: v for k, v in a.items() if k != "kl"} == \
            {k: v for k, v in b.items() if k != "kl_bits"}
    write_report(nats, tmp_path / "n", plots=False)
    write_report(bits, tmp_path / "b", plots=False)
    rn = list(csv.DictReader(open(tmp_path / "n" / "runs.csv")))
    rb = list(csv.DictReader(open(tmp_path / "b" / "runs.csv")))
    assert "kl" in rn[0] and "kl_bits" not in rn[0]
    assert "kl_bits" in rb[0] and "kl" not in rb[0]
    assert [float(r["kl_bits"]) for r in rb] == [float(r["kl"]) / math.log(2) for r in rn]
    tables = (tmp_path / "b" / "tables.md").read_text()
    assert "KL (bits)" in tables and "KL (nats)" not in tables
    assert "KL (nats)" in (tmp_path / "n" / "tables.md").read_text()
    assert json.load(open(tmp_path / "b" / "runs.json"))["settings"]["kl_unit"] == "bits"


def test_run_study_rejects_an_unknown_kl_unit():
    m, (x, y) = small_model(), small_data()
    for call in (run_study, check_study):
        with pytest.raises(ParameterError, match="kl_unit.*'nat'"):
            call(m, x, y, methods=("uniform",), bits=(2,), kl_unit="nat")


def test_cli_kl_unit(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "o"
    assert main(["study", "--methods", "uniform", "--bits", "2-3", "--adaptive-bits", "2-3",
                 "--experiments", "per_layer,whole", "--kl-unit", "bits", "--quiet",
                 "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "runs.csv")))
    assert rows and "kl_bits" in rows[0] and "kl" not in rows[0]
    assert (out / "fig4_kl_per_layer.png").exists()
    assert "KL (bits)" in (out / "tables.md").read_text()
    capsys.readouterr()
    assert main(["study", "--kl-unit", "nat", "--out", str(tmp_path / "x"), "--quiet"]) != 0
    assert "--kl-unit" in capsys.readouterr().err
    assert main(["study", "--compare", "--kl-unit", "bits", "--out", str(tmp_path / "c"),
                 "--quiet"]) == 1
    assert "--kl-unit" in capsys.readouterr().err
    assert not (tmp_path / "c").exists() and not (tmp_path / "x").exists()

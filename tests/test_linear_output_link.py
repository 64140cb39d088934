"""The linear-output benchmark runs end to end (one epoch, two seeds) and writes its figures."""

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "linear_output_link.py"


def test_linear_output_link_runs_and_writes_every_figure(tmp_path):
    spec = importlib.util.spec_from_file_location("linear_output_link", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "figures.json"
    result = bench.main(["--epochs", "1", "--seeds", "0", "1", "--no-sae", "--json", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert set(result["arms"]) == set(bench.ARMS) and result["sparse"] is None
    link = result["logits_of_values"]
    # images lie in [0, 1], so clamping the outputs can only bring them closer
    mse, clamped = link["test_mse_per_pixel"], link["test_mse_per_pixel_clamped"]
    assert all(c <= v for c, v in zip(clamped["values"], mse["values"]))
    assert 0 < link["outside_0_1"]["min"] and link["outside_0_1"]["max"] < 1
    for row in result["arms"].values():
        assert all(0 <= a <= 90 for a in row["largest_angle_deg"]["values"])

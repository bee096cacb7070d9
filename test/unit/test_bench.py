import json

import pytest

from tacocc_core.cli import main
from tacocc_core.config import demo_checkpoint_path


def test_bench_writes_the_stage_table(tmp_path, capsys):
    out = tmp_path / "reports" / "bench.json"
    assert (
        main(
            [
                "bench",
                "--config",
                "tiny",
                "--frames",
                "2",
                "--warmup",
                "1",
                "--points-per-sweep",
                "3000",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    stages = [
        "conditioning",
        "image_branch",
        "view_transform",
        "lidar_branch",
        "fuser",
        "temporal",
        "head",
        "total",
    ]
    assert list(report["stages"]) == stages
    for row in report["stages"].values():
        assert 0 < row["p50_ms"] <= row["p99_ms"]
    parts = sum(report["stages"][name]["mean_ms"] for name in stages[:-1])
    assert parts <= report["stages"]["total"]["mean_ms"] * 1.001  # the stages lie inside the total
    assert report["config"] == "tiny" and report["dtype"] == "fp32" and report["frames"] == 2
    assert isinstance(report["bf16_native"], bool)
    assert report["points"] == 3000 * (2 + 1)  # tiny preset: 2 previous sweeps
    assert report["peak_memory_mb"] > 0
    assert report["weights"] == "random initialisation (untrained)" and report["folded"]
    assert report["cpu_p50_ms"] > 0 and 0 <= report["refined_fraction"] <= 1
    assert [p.name for p in out.parent.iterdir()] == ["bench.json"]  # no temporary file left behind
    assert "fuser" in capsys.readouterr().out


def test_bench_rejects_bad_arguments(capsys):
    assert main(["bench", "--config", "tiny", "--frames", "0"]) == 2
    assert "--frames must be >= 1" in capsys.readouterr().err
    assert main(["bench", "--config", "no_such_preset"]) == 2
    assert "unknown preset 'no_such_preset'" in capsys.readouterr().err
    assert main(["bench", "--config", "tiny", "--pretrained", "/nonexistent/resnet18.pth"]) == 2
    assert "checkpoint /nonexistent/resnet18.pth not found" in capsys.readouterr().err


def test_bench_times_the_demo_checkpoint_by_default(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = ["bench", "--config", "demo", "--frames", "1", "--warmup", "0", "--points-per-sweep", "3000"]
    assert main([*args, "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["weights"].endswith("checkpoints/demo.pt") and report["folded"]
    assert "weights: " in capsys.readouterr().out
    assert main([*args, "--checkpoint", "none", "--no-fold", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["weights"] == "random initialisation (untrained)" and not report["folded"]
    assert "unfolded (--no-fold)" in capsys.readouterr().out


def test_bench_refuses_a_checkpoint_of_another_network(capsys):
    args = ["bench", "--config", "tiny", "--frames", "1", "--checkpoint", str(demo_checkpoint_path())]
    assert main(args) == 2
    assert "tacocc bench: error: --checkpoint" in capsys.readouterr().err


def test_bench_alternates_backends_and_prints_ratios_to_the_stock_network(tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="the onnxruntime backend needs onnxruntime")
    out = tmp_path / "bench.json"
    args = ["bench", "--config", "demo", "--frames", "2", "--warmup", "0", "--points-per-sweep", "3000"]
    assert main([*args, "--backend", "torch,onnxruntime:image,onnxruntime", "--reference", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert list(report["backends"]) == ["torch", "onnxruntime:image", "onnxruntime"]
    assert list(report["backends"]["onnxruntime"]["stages"]) == [
        "conditioning",
        "lidar_branch",
        "image_to_volume",
        "fuser",
        "warp",
        "volume_to_logits",
        "total",
    ]
    assert list(report["backends"]["onnxruntime:image"]["stages"])[-3:] == ["temporal", "head", "total"]
    assert report["backends"]["onnxruntime"]["providers"]["volume_to_logits"] == ["CPUExecutionProvider"]
    assert "ResNet-18 on 6 x 64x176" in report["reference"]["name"] and report["reference"]["p50_ms"] > 0
    for name, ratio in report["ratios"].items():
        total = report["backends"][name]["stages"]["total"]["p50_ms"]
        assert ratio == pytest.approx(total / report["reference"]["p50_ms"])
    printed = capsys.readouterr().out
    assert "ratio onnxruntime / reference:" in printed and "backend onnxruntime:image" in printed
    with pytest.raises(SystemExit):  # argparse refuses an unknown backend
        main([*args, "--backend", "torch,tensorflow"])
    assert "expected a list of torch, onnxruntime, onnxruntime:image" in capsys.readouterr().err


def test_bench_counts_flops_per_stage_and_the_floor_of_the_ratio(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = ["bench", "--config", "tiny", "--frames", "1", "--warmup", "0", "--points-per-sweep", "2000"]
    assert main([*args, "--flops", "--out", str(out)]) == 0
    flops = json.loads(out.read_text())["flops"]
    assert set(flops["stages_gflop"]) == {"conditioning", "lidar_branch", "image_branch", "view_transform"} | {
        "fuser",
        "temporal",
        "head",
    }
    assert flops["total_gflop"] == pytest.approx(sum(flops["stages_gflop"].values()))
    assert flops["flop_floor"] == pytest.approx(flops["total_gflop"] / flops["reference_gflop"])
    assert flops["stages_gflop_per_s"]["image_branch"] > 0
    assert "reference_gflop_per_s" not in flops  # no --reference: no stock network was timed
    printed = capsys.readouterr().out
    assert "FLOP floor of the ratio to the stock ResNet" in printed and "this run is" not in printed

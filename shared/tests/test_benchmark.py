"""The benchmark helpers (interleaved ratios, peak memory, parameter guard), the speed switches of
``diffrepro.core.speedups``, and the GPU benchmark script's correctness path on CPU."""

import importlib.util
import json
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from diffrepro.core import benchmark, speedups

ROOT = Path(__file__).resolve().parents[2]


def _fake_clock(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(benchmark.time, "perf_counter", lambda: clock[0])

    def costs(seconds):
        def fn():
            clock[0] += seconds

        return fn

    return costs


def test_compare_ratios_are_paired_per_repeat(monkeypatch):
    costs = _fake_clock(monkeypatch)
    out = benchmark.compare(
        {"ref": costs(2.0), "fast": costs(1.0), "slow": costs(3.0)}, reference="ref", repeat=4
    )
    assert out["ref"]["ratio"] == out["ref"]["ratio_min"] == out["ref"]["ratio_max"] == 1.0
    assert out["fast"]["ratio"] == pytest.approx(0.5)
    assert out["slow"]["ratio"] == pytest.approx(1.5)
    assert out["slow"]["time_s"] == out["slow"]["min_s"] == out["slow"]["max_s"] == 3.0
    assert out["fast"]["repeats"] == 4


def test_compare_interleaves_and_rotates_the_order(monkeypatch):
    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    benchmark.compare(fns, reference="a", warmup=0, repeat=3)
    assert calls == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]


def test_compare_spread_and_median(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(benchmark.time, "perf_counter", lambda: clock[0])
    ref_costs = iter([1.0, 1.0, 1.0, 1.0])
    var_costs = iter([1.0, 3.0, 2.0, 2.0])  # warm-up, then 3, 2, 2 (ratios 3, 2, 2)

    def ref():
        clock[0] += next(ref_costs)

    def var():
        clock[0] += next(var_costs)

    out = benchmark.compare({"ref": ref, "var": var}, reference="ref", warmup=1, repeat=3)
    assert out["var"]["ratio"] == 2.0
    assert (out["var"]["ratio_min"], out["var"]["ratio_max"]) == (2.0, 3.0)


def test_compare_rejects_unknown_reference_and_bad_repeat():
    with pytest.raises(ValueError, match="reference"):
        benchmark.compare({"a": lambda: None}, reference="b")
    with pytest.raises(ValueError, match="repeat"):
        benchmark.compare({"a": lambda: None}, reference="a", repeat=0)


def test_peak_memory_on_cpu_counts_the_transient_tensor():
    def transient():
        x = torch.empty(256, 1024, dtype=torch.float32)  # 1 MiB
        y = x + 1  # another MiB while x is alive
        del x, y

    peak = benchmark.peak_memory(transient)
    assert 2 * 2**20 <= peak < 3 * 2**20
    assert benchmark.peak_memory(lambda: None) == 0


def test_assert_same_parameters():
    a, b = nn.Linear(4, 4), nn.Linear(4, 4)
    assert benchmark.assert_same_parameters(a, b, "case") == 20
    with pytest.raises(ValueError, match="case: configurations differ: 20 parameters vs 24"):
        benchmark.assert_same_parameters(a, nn.Linear(5, 4), "case")


def test_write_results_has_machine_and_rows(tmp_path):
    path = benchmark.write_results("t", [{"a": 1.23456, "b": None}], out_dir=tmp_path)
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["rows"] == [{"a": 1.23456, "b": None}]
    assert data["machine"]["cpu_threads"] == torch.get_num_threads()
    assert "| 1.235 |  |" in path.read_text()


def _conv_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GroupNorm(4, 8), nn.SiLU())


def test_channels_last_context_matches_and_restores():
    model = _conv_model()
    x = torch.randn(2, 3, 8, 8)
    expected = model(x)
    with speedups.channels_last(model):
        assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
        got = model(speedups.to_channels_last(x))
        assert got.is_contiguous(memory_format=torch.channels_last)
    assert model[0].weight.is_contiguous()
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    with speedups.channels_last(model, enabled=False):
        assert model[0].weight.is_contiguous()


def test_to_channels_last_leaves_other_tensors():
    ids = torch.zeros(2, 3, 4, 5, dtype=torch.long)
    assert speedups.to_channels_last(ids) is ids
    flat = torch.randn(3, 4)
    assert speedups.to_channels_last(flat) is flat


def test_maybe_compile_falls_back_with_one_notice(monkeypatch):
    speedups._NOTICES.clear()
    monkeypatch.setattr(speedups, "compiler_problem", lambda device="cpu": "no compiler here")

    def fn(x):
        return x + 1

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert speedups.maybe_compile(fn) is fn
        assert speedups.maybe_compile(fn) is fn
    assert [str(w.message) for w in caught] == [
        "torch.compile disabled: no compiler here; running eagerly"
    ]
    assert speedups.maybe_compile(fn, enabled=False) is fn


def test_compiler_problem_names_the_missing_compiler(monkeypatch):
    monkeypatch.setenv("PATH", "")
    monkeypatch.setenv("CXX", "my-cxx")
    assert "my-cxx" in speedups.compiler_problem("cpu")


def test_bf16_autocast_only_with_native_bf16(monkeypatch):
    speedups._NOTICES.clear()
    monkeypatch.setattr(speedups, "cpu_has_native_bf16", lambda: False)
    x = torch.randn(2, 4)
    layer = nn.Linear(4, 4)
    with pytest.warns(RuntimeWarning, match="no native bf16"), speedups.bf16_autocast("cpu"):
        assert layer(x).dtype == torch.float32
    monkeypatch.setattr(speedups, "cpu_has_native_bf16", lambda: True)
    with speedups.bf16_autocast("cpu"):
        assert layer(x).dtype == torch.bfloat16
    with speedups.bf16_autocast("cpu", enabled=False):
        assert layer(x).dtype == torch.float32


def _gpu_bench():
    spec = importlib.util.spec_from_file_location(
        "gpu_bench", ROOT / "shared" / "benchmarks" / "gpu_bench.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_bench_correctness_path_on_cpu(tmp_path):
    pytest.importorskip("triton")
    from diffrepro.core.kernels.backend import triton_device_problem

    if triton_device_problem(torch.device("cpu")) is not None:
        pytest.skip("needs TRITON_INTERPRET=1 (set by conftest without CUDA)")
    gpu_bench = _gpu_bench()
    args = ["--device", "cpu", "--check-only", "--tiny", "--dtypes", "fp32", "--out", str(tmp_path)]
    results = gpu_bench.main(args)
    attn = {r["backend"]: r for r in results["attention"] if r["shape"] == "tiny self d=40"}
    assert set(attn) == {"sdpa", "triton", "auto", "math"}
    for row in attn.values():
        for key in ("out_err", "dq_err", "dk_err", "dv_err"):
            assert row[key] < 1e-4, (row["backend"], key, row[key])
    norms = {r["kernel"]: r for r in results["group_norm_silu"]}
    assert norms["group_norm_silu triton"]["dx_err"] < 1e-4
    assert results["unet"][0]["rel_err_vs_fp32"] < 1e-5
    saved = json.loads((tmp_path / "gpu.json").read_text())
    assert saved["auto_vs_sdpa_max"] is None  # no timings in --check-only
    assert (tmp_path / "gpu_attention.md").is_file()


def test_gpu_bench_rejects_bad_arguments():
    gpu_bench = _gpu_bench()
    with pytest.raises(SystemExit):
        gpu_bench.parse(["--dtypes", "fp8"])
    with pytest.raises(SystemExit):
        gpu_bench.parse(["--repeat", "0"])

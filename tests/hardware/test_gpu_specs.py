"""The GPU spec table and the peak formula: the seed's A100 numbers, vendors' figures, sources."""

import csv

import pytest

from torchprof_lab.hardware.peak import derived_peak, peak, peak_bandwidth, peak_flops, ridge_point
from torchprof_lab.hardware.specs import SPEC_FILE, UnknownGpuError, find_gpu, load_sources, load_specs

REQUIRED = ["V100", "T4", "A10", "A30", "A100 PCIe 40GB", "A100 PCIe 80GB", "A100 SXM4 40GB", "A100 SXM4 80GB",
            "L4", "L40S", "RTX 3090", "RTX 4090", "H100 PCIe", "H100 SXM", "H200", "B200"]
COLUMNS = ["architecture", "compute_capability", "sms", "cuda_cores", "boost_mhz", "memory_gb", "memory_type",
           "bus_bits", "bandwidth_gbs", "tdp_w", "sm_fp64", "sm_fp32", "sm_fp16", "sm_fp16bf16_tc", "sources"]


def test_seed_a100_figures_exactly():
    a100 = "NVIDIA A100-SXM4-40GB"
    assert peak_flops(a100, "fp32", clock="boost") == 6912 * 1410e6 * 2
    assert peak_flops(a100, "fp64", clock="boost") == 108 * 32 * 1410e6 * 2
    assert peak_flops(a100, "fp16", tensor_cores=False, clock="boost") == 108 * 256 * 1410e6 * 2
    assert peak_flops(a100, "fp16", clock="boost") == 108 * 1024 * 1410e6 * 2
    assert round(peak_flops(a100, "fp32") / 1e12, 1) == 19.5
    assert round(peak_flops(a100, "fp64", clock="boost") / 1e12, 2) == 9.75
    assert peak_flops(a100, "fp64") == 9.7e12  # the datasheet rounds it down
    assert round(peak_flops(a100, "fp16", tensor_cores=False) / 1e12) == 78
    assert round(peak_flops(a100, "fp16") / 1e12) == 312
    assert "108 SMs x 1024 FMA/clk x 2 x 1410 MHz" in peak(a100, "fp16", clock="boost").formula


def test_every_required_gpu_has_a_row_with_every_column_and_a_known_source():
    sources = load_sources()
    with open(SPEC_FILE, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for name in REQUIRED:
        find_gpu(name)
    for row in rows:
        for column in COLUMNS:
            assert row[column].strip(), (row["gpu"], column)
        codes = row["sources"].split("|")
        assert codes and all(code in sources for code in codes), row["gpu"]
        assert row["base_mhz"].strip() or "base clock left empty" in row["notes"], row["gpu"]


def test_formula_reproduces_every_datasheet_figure_at_its_implied_clock():
    """At the clock each vendor figure implies, the formula gives the figure; that clock must be a
    real clock of the part: between its base (or 40% of boost) and boost (+2% for datasheet rounding)."""
    for spec in load_specs():
        for column, tflops in spec.datasheet_tflops.items():
            if column not in spec.per_sm:
                continue
            mhz = spec.implied_mhz(column)
            assert (spec.base_mhz or 0.4 * spec.boost_mhz) <= mhz <= spec.boost_mhz * 1.02, (spec.gpu, column, mhz)


@pytest.mark.parametrize("gpu,dtype,tc,tflops,clock", [
    ("H100 SXM", "fp32", False, 67, "boost"),           # FP32/FP64 fit the 1980 MHz boost
    ("H100 SXM", "fp16", True, 989.4, "datasheet"),     # tensor figures fit ~1830 MHz
    ("L40S", "fp16", True, 362.05, "datasheet"),
    ("RTX 4090", "fp16", True, 165.2, "boost"),         # FP32-accumulate, the rate PyTorch uses
    ("RTX 3090", "fp16", True, 71, "boost"),
    ("T4", "fp16", True, 65, "boost"),
    ("L4", "fp8", True, 242.5, "boost"),
    ("B200", "bf16", True, 2250, "datasheet"),
])
def test_vendor_dense_figures(gpu, dtype, tc, tflops, clock):
    assert peak_flops(gpu, dtype, tc, clock=clock) / 1e12 == pytest.approx(tflops, rel=0.011)


def test_default_peak_is_the_datasheet_figure_mfu_is_quoted_against():
    # MFU in papers and frameworks divides by the vendor's dense figure: 989.4 TFLOPS on an H100 SXM
    assert peak_flops("NVIDIA H100 80GB HBM3", "fp16") / 1e12 == pytest.approx(989.4, rel=1e-9)
    # exactly the figure, to the FLOP/s, not 311999999999999.94 from a float clock
    assert peak_flops("NVIDIA A100-SXM4-40GB", "fp16") == 312e12 and peak_flops("H100 SXM", "fp16") == 989.4e12
    assert peak_flops("NVIDIA H100 80GB HBM3", "BFloat16") == peak_flops("H100 SXM", "bf16")
    assert peak("H100 SXM", "bf16").clock == "datasheet"
    for bad in (-5, 0, float("nan"), float("inf"), True, "fast"):
        with pytest.raises(ValueError, match="clock must be"):
            peak_flops("H100 SXM", "fp16", clock=bad)


def test_boost_clock_overstates_hopper_tensor_peak():
    boost = peak_flops("H100 SXM", "bf16", clock="boost") / 1e12
    assert boost == pytest.approx(1070.5, rel=0.001)  # 132 x 2048 x 2 x 1980 MHz, not the datasheet 989
    assert peak("H100 SXM", "bf16", clock="datasheet").clock_mhz == pytest.approx(1830, abs=2)
    assert peak_flops("H100 SXM", "bf16", clock=1755) == 132 * 2048 * 2 * 1755e6


@pytest.mark.parametrize("name,expected", [
    ("NVIDIA A100-SXM4-40GB", "A100-SXM4-40GB"), ("A100 SXM4 40GB", "A100-SXM4-40GB"),
    ("NVIDIA H100 80GB HBM3", "H100-SXM5"), ("H100 SXM", "H100-SXM5"), ("NVIDIA L4", "L4"),
    ("NVIDIA L40S", "L40S"), ("NVIDIA A10", "A10"), ("NVIDIA H200", "H200-SXM"),
    ("NVIDIA GeForce RTX 4090", "RTX-4090"), ("Tesla T4", "T4"),
])
def test_names_as_nvml_and_people_write_them(name, expected):
    assert find_gpu(name).gpu == expected


@pytest.mark.parametrize("name", ["A10G", "H20", "L40", "A100", "RTX 5090"])
def test_substrings_do_not_match_and_unknown_names_suggest(name):
    with pytest.raises(UnknownGpuError) as info:
        find_gpu(name)
    assert "not in" in str(info.value)
    if name == "A10G":
        assert info.value.suggestions


def test_bandwidth_by_formula_matches_vendor():
    for spec in load_specs():
        assert peak_bandwidth(spec) / 1e9 == pytest.approx(spec.bandwidth_gbs, rel=0.01), spec.gpu
    assert peak_bandwidth("A100 SXM4 40GB") == 5120 / 8 * 2.43e9
    assert ridge_point("A100 SXM4 40GB", "fp16") == pytest.approx(312e12 / 1555e9, rel=0.01)


def test_derived_peak_for_a_gpu_not_in_the_table():
    p = derived_peak("NVIDIA A800", sms=108, compute_capability="8.0", clock_mhz=1410, dtype="fp16")
    assert p.derived and p.value == 108 * 1024 * 2 * 1410e6
    with pytest.raises(ValueError):
        derived_peak("x", 10, "1.0", 1000)

"""The CPU's theoretical peak per dtype (a pure function of flags, cores and clock, checked on
made-up CPUs with known answers) and the measured attainable roofs (checked for real here)."""

import re
from dataclasses import replace

import pytest
import torch

from torchprof_lab.hardware import cpu, cpu_roofs
from torchprof_lab.hardware.clock_probe import measure_core_mhz
from torchprof_lab.hardware.cpu import CpuInfo, cpu_info
from torchprof_lab.hardware.cpu_peak import CPU_DTYPES, cpu_dtype, cpu_peak, flops_per_cycle
from torchprof_lab.hardware.cpu_roofs import MATMUL_SIZES, measure_cpu_ceilings

SSE_ONLY = frozenset({"sse", "sse2", "sse4_2"})  # Nehalem / Westmere
SANDY_BRIDGE = SSE_ONLY | {"avx"}  # AVX, no FMA: one add and one mul pipe
ZEN2 = SSE_ONLY | {"avx", "avx2", "fma"}  # AVX2 only
ALDER_LAKE = ZEN2 | {"avx_vnni"}  # AVX-VNNI without AVX-512
AVX512 = ZEN2 | {"avx512f", "avx512_vnni"}  # Skylake-SP / Cascade Lake
ZEN5 = AVX512 | {"avx_vnni", "avx512_bf16"}  # this project's AMD EPYC (family 26)
SAPPHIRE_RAPIDS = AVX512 | {"avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8"}
GRANITE_RAPIDS = SAPPHIRE_RAPIDS | {"amx_fp16"}

# per core per cycle: fp32, fp64, bf16, fp16, int8 (int8 in OPs)
KNOWN = {
    "sse_only": (SSE_ONLY, (8, 4, 8, 8, 16)),
    "sandy_bridge": (SANDY_BRIDGE, (16, 8, 16, 16, 32)),
    "zen2": (ZEN2, (32, 16, 32, 32, 64)),
    "alder_lake": (ALDER_LAKE, (32, 16, 32, 32, 128)),
    "skylake_sp": (AVX512, (64, 32, 64, 64, 256)),
    "zen5": (ZEN5, (64, 32, 128, 64, 256)),
    "sapphire_rapids": (SAPPHIRE_RAPIDS, (64, 32, 1024, 128, 2048)),
    "granite_rapids": (GRANITE_RAPIDS, (64, 32, 1024, 1024, 2048)),
}


@pytest.mark.parametrize("name", KNOWN)
def test_flops_per_cycle_of_known_cores(name):
    flags, expected = KNOWN[name]
    assert tuple(flops_per_cycle(flags, dt)[0] for dt in ("fp32", "fp64", "bf16", "fp16", "int8")) == expected


def test_this_machines_cpu_exactly():
    """AMD EPYC Zen 5, 2 cores, 2596 MHz (/proc/cpuinfo), AVX-512 + AVX512-BF16."""
    assert cpu_peak(ZEN5, 2, 2596, "fp32").value == 2 * 2596e6 * 64 == pytest.approx(332.288e9)
    assert cpu_peak(ZEN5, 2, 2596, "bf16").value == 2 * 2596e6 * 128 == pytest.approx(664.576e9)
    assert cpu_peak(ZEN5, 2, 2596, "fp32").formula == (
        "2 cores x 2596 MHz x 64 FLOP/cycle (AVX-512: 16 fp32 lanes x 2 (FMA) x 2 FMA units) = 332 GFLOP/s")
    assert cpu_peak(ZEN5, 2, 2596, "int8").formula.endswith("= 1329 GOP/s")
    assert "VDPBF16PS" in cpu_peak(ZEN5, 2, 2596, "bf16").formula


def test_sapphire_rapids_amx_and_zen2_avx2():
    spr = cpu_peak(SAPPHIRE_RAPIDS, 56, 3800, "bf16")
    assert spr.per_cycle == 1024 and spr.value == 56 * 3800e6 * 1024 and "AMX-BF16" in spr.formula
    zen2 = cpu_peak(ZEN2, 64, 3400, "fp32")
    assert zen2.per_cycle == 32 and zen2.value == 64 * 3400e6 * 32
    assert "AVX2: 8 fp32 lanes x 2 (FMA) x 2 FMA units" in zen2.formula


def test_bf16_and_fp16_without_hardware_support_are_bounded_by_fp32():
    for flags in (SSE_ONLY, ZEN2, AVX512):
        fp32 = flops_per_cycle(flags, "fp32")[0]
        assert flops_per_cycle(flags, "bf16")[0] == fp32 and flops_per_cycle(flags, "fp16")[0] == fp32
        assert "computed in fp32" in flops_per_cycle(flags, "bf16")[1]


@pytest.mark.parametrize("name", KNOWN)
def test_fp64_is_half_of_fp32_and_tf32_is_fp32(name):
    flags, _ = KNOWN[name]
    fp32 = cpu_peak(flags, 4, 3000, "fp32")
    assert cpu_peak(flags, 4, 3000, "fp64").value * 2 == fp32.value
    assert cpu_peak(flags, 4, 3000, "tf32") == fp32  # same dtype, same words


def test_dtype_names():
    assert cpu_dtype("tf32") == cpu_dtype("float32") == cpu_dtype(torch.float32) == "fp32"
    assert cpu_dtype("BF16") == cpu_dtype(torch.bfloat16) == "bf16"
    with pytest.raises(ValueError):
        cpu_dtype("fp8")
    with pytest.raises(ValueError):
        flops_per_cycle(ZEN5, "int4")


FORMULA = re.compile(r"^(\d+) cores? x (\d+) MHz x (\d+) (FLOP|OP)/cycle \((.+)\) = (\d+) G(FLOP|OP)/s$")


@pytest.mark.parametrize("name", KNOWN)
@pytest.mark.parametrize("dtype", CPU_DTYPES)
def test_formula_arithmetic_adds_up(name, dtype):
    flags, _ = KNOWN[name]
    peak = cpu_peak(flags, 3, 2450, dtype)
    cores, mhz, per_cycle, unit, words, result, unit2 = FORMULA.match(peak.formula).groups()
    assert (int(cores), int(mhz), int(per_cycle)) == (3, 2450, peak.per_cycle)
    assert unit == unit2 == ("OP" if dtype == "int8" else "FLOP")
    assert int(result) == round(3 * 2450e6 * peak.per_cycle / 1e9)
    # the words multiply out too: "... 16 fp32 lanes x 2 (FMA) x 2 FMA units" -> 64
    lanes = re.search(r"(\d+) fp(32|64) lanes x (\d) \((?:no )?FMA\) x (\d) ", words)
    if lanes:
        factor = peak.per_cycle // (int(lanes[1]) * int(lanes[3]) * int(lanes[4]))
        assert factor in (1, 2) and peak.per_cycle % (int(lanes[1]) * int(lanes[3]) * int(lanes[4])) == 0


def test_no_clock_no_peak():
    peak = cpu_peak(ZEN5, 2, None, "fp32")
    assert peak.value is None and "unknown" in peak.formula


def _info(threads, cores=2, mhz=2596.0):
    return CpuInfo("made-up Zen 5", logical_cpus=2 * cores, physical_cores=cores, threads_used=threads,
                   simd=tuple(f for f in cpu.SIMD_FLAGS if f in ZEN5), max_mhz=mhz, frequency_source="given")


def test_threads_past_the_physical_cores_do_not_raise_the_peak():
    two, eight, one = _info(2), _info(8), _info(1)
    assert eight.peak_flops("fp32") == two.peak_flops("fp32") == 2 * one.peak_flops("fp32") == 2 * 2596e6 * 64
    assert eight.peak_flops("bf16") == two.peak_flops("bf16")
    assert eight.peak_formula("fp32").startswith("2 cores x 2596 MHz")


def test_cpu_info_keeps_its_fp32_fields_and_reports_every_dtype():
    info = _info(2)
    assert info.fp32_flops_per_cycle == 64 and info.estimated_peak_flops == info.peak_flops("fp32")
    d = info.to_dict()
    assert all(d[f"peak_flops_{dt}"] == info.peak_flops(dt) for dt in CPU_DTYPES)
    assert d["peak_flops_bf16"] == 2 * d["peak_flops_fp32"] == 2 * d["estimated_peak_flops"]
    assert d["peak_formula_fp32"] == info.peak_formula("fp32")


def test_relative_iqr():
    assert cpu_roofs._relative_iqr([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx(2 / 3)
    assert cpu_roofs._relative_iqr([10.0, 10.0, 10.0, 10.0, 1.0]) == 0.0  # one preempted run does not count
    assert cpu_roofs._relative_iqr([7.0]) == 0.0


def test_this_cpus_clock_reading():
    info = cpu_info()
    assert info.max_mhz and 500 < info.max_mhz < 7000, info.frequency_source
    measured = measure_core_mhz()
    if measured:  # Linux x86-64: the peak uses the highest clock read
        assert info.max_mhz >= measured and "measured" in info.frequency_source


def _check(m, dtype, peak):
    assert m.dtype == m.matmul_dtype == dtype and m.matmul_n in MATMUL_SIZES
    assert m.matmul_flops > 1e9 and m.copy_bytes_per_s > 1e8 and m.ridge_point > 0
    assert m.matmul_spread >= 0 and m.copy_spread >= 0 and isinstance(m.disturbed, bool)
    # a disturbed result says why; a steady one is silent unless a disturbed first try was retaken
    assert m.note if m.disturbed else (m.note is None or m.note.startswith("measured twice"))
    assert m.peak_flops == peak
    # the theoretical peak cannot be passed; if it is, the peak model (or the clock) is wrong
    assert m.matmul_flops < peak, f"{m.matmul_flops / 1e9:.0f} GFLOP/s by {m.matmul_kernel} at n={m.matmul_n}"


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_measured_matmul_stays_under_the_theoretical_peak(dtype):
    m = measure_cpu_ceilings.__wrapped__(dtype=dtype, budget=0.3)
    threads = torch.get_num_threads()
    info = cpu_info()
    assert m.threads == threads
    _check(m, dtype, info.peak_flops(dtype))


def test_int8_measures_fp32_and_says_so():
    m = measure_cpu_ceilings.__wrapped__(dtype="int8", budget=0.05, n=256, copy_mib=8)
    assert m.dtype == "int8" and m.matmul_dtype == "fp32" and m.matmul_n == 256 and "int8" in m.note


def test_a_matmul_past_the_peak_is_flagged(monkeypatch):
    """At a made-up 1 MHz clock (a 0.13 GFLOP/s peak: a loaded machine's matmul still runs ten
    times faster) any real matmul passes the peak even after the clock is read again: disturbed,
    and the note says the clock is wrong."""
    slow = _info(torch.get_num_threads(), cores=torch.get_num_threads(), mhz=1.0)
    monkeypatch.setattr(cpu_roofs, "cpu_info", lambda measure_clock=True: slow)
    monkeypatch.setattr(cpu_roofs, "measure_core_mhz_again", lambda: 1.0)
    m = measure_cpu_ceilings.__wrapped__(dtype="fp32", budget=0.05, n=256, copy_mib=8)
    assert m.disturbed and m.matmul_flops > m.peak_flops and "clock read is wrong" in m.note
    assert "(read again: 1 MHz)" in m.note


def test_a_low_first_clock_reading_is_read_again(monkeypatch):
    """A host that slowed the core while the clock was first probed makes a low peak that a real
    matmul passes: the clock is read again, and the higher reading gives the peak."""
    clocks = iter([1.0, 50_000.0])  # MHz: the first reading, then the second
    monkeypatch.setattr(cpu_roofs, "cpu_info", lambda measure_clock=True: _info(torch.get_num_threads(),
                                                                               mhz=next(clocks)))
    again = []
    monkeypatch.setattr(cpu_roofs, "measure_core_mhz_again", lambda: again.append(1))
    # one thread measured (the caller's count is back by the time the clock is read again)
    m = cpu_roofs.measure_once(threads=1, dtype="fp32", budget=0.05, n=256, copy_mib=8)
    assert again == [1] and m.threads == 1 and m.peak_flops == _info(1, mhz=50_000.0).peak_flops("fp32")
    assert m.matmul_flops < m.peak_flops and "clock read is wrong" not in (m.note or "")


def test_reading_the_clock_again_only_raises_it(monkeypatch):
    from torchprof_lab.hardware import clock_probe
    first = measure_core_mhz()
    if first is None:
        pytest.skip("no clock probe on this platform")
    monkeypatch.setattr(clock_probe, "_highest", [first])
    monkeypatch.setattr(clock_probe, "_probe", lambda runs: first / 2)
    assert clock_probe.measure_core_mhz_again() == first == measure_core_mhz()
    monkeypatch.setattr(clock_probe, "_probe", lambda runs: first * 2)
    assert clock_probe.measure_core_mhz_again() == 2 * first == measure_core_mhz()

    def raised_meanwhile(runs):  # another thread's higher reading lands while this one probes
        clock_probe._highest[0] = 5 * first
        return 3 * first

    monkeypatch.setattr(clock_probe, "_probe", raised_meanwhile)
    assert clock_probe.measure_core_mhz_again() == 5 * first == measure_core_mhz()


def test_a_disturbed_measurement_is_taken_again_and_the_steadier_kept(monkeypatch):
    """The roofline rests on the roofs: a disturbed measurement is repeated once, the steady one kept."""
    base = dict(matmul_flops=1e11, copy_bytes_per_s=1e10, threads=2, seconds=0.5)
    disturbed = cpu_roofs.MeasuredCeilings(**base, matmul_spread=7.1, disturbed=True, note="matmul spread 710% > 10%")
    steady = cpu_roofs.MeasuredCeilings(**{**base, "matmul_flops": 4e11}, matmul_spread=0.02)
    made = iter([disturbed, steady])
    monkeypatch.setattr(cpu_roofs, "measure_once", lambda *args: next(made))
    m = measure_cpu_ceilings.__wrapped__(budget=0.01)
    assert m.matmul_flops == 4e11 and not m.disturbed and m.seconds == 1.0
    assert m.note == ("measured twice: the first was disturbed (matmul spread 710% > 10%); the second was not; "
                      "the second is kept")
    made = iter([disturbed, replace(disturbed, matmul_spread=0.5, note="copy spread 50% > 10%")])
    m = measure_cpu_ceilings.__wrapped__(budget=0.02)
    assert m.disturbed and m.matmul_spread == 0.5 and m.note.endswith("the second is kept")
    made = iter([steady])
    assert measure_cpu_ceilings.__wrapped__(budget=0.03) is steady  # steady at once: measured once

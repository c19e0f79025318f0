"""Which arithmetic OpenVINO is asked for: bf16 only where AMX runs it natively."""

import pytest

from shared.embedding import openvino_precision

SAPPHIRE_RAPIDS = {"avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"}
BF16_WITHOUT_AMX = {"avx2", "avx512f", "avx512_bf16", "avx512_vnni"}
AVX2_ONLY = {"avx2", "fma"}


@pytest.mark.parametrize(
    ("flags", "expected"),
    [(SAPPHIRE_RAPIDS, "bf16"), (BF16_WITHOUT_AMX, "f32"), (AVX2_ONLY, "f32"), (set(), "f32")],
)
def test_auto_picks_bf16_only_with_amx(flags: set[str], expected: str) -> None:
    assert openvino_precision("auto", flags) == expected


@pytest.mark.parametrize("setting", ["f32", "bf16"])
def test_an_explicit_precision_is_kept_on_any_cpu(setting: str) -> None:
    assert openvino_precision(setting, SAPPHIRE_RAPIDS) == setting
    assert openvino_precision(setting, AVX2_ONLY) == setting

"""How the calibration decides and what it trusts from its cache (the real model's calibration is
in tests/integration/test_embedding_calibration.py); fake encoders with known speed and answers."""

import json
import time
from pathlib import Path

import numpy as np
import pytest

from shared import calibration
from shared.calibration import Calibration, Measured

SAPPHIRE_RAPIDS = {"avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"}
BF16_WITHOUT_AMX = {"avx2", "avx512f", "avx512_bf16", "avx512_vnni"}
AVX2_ONLY = {"avx2", "fma"}


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (SAPPHIRE_RAPIDS, ["f32", "bf16"]),
        (BF16_WITHOUT_AMX, ["f32", "bf16"]),
        (AVX2_ONLY, ["f32"]),
        (set(), ["f32"]),
    ],
)
def test_bf16_is_measured_wherever_the_cpu_computes_it(
    flags: set[str], expected: list[str]
) -> None:
    assert calibration.eligible_precisions(flags) == expected


def _vectors(texts: list[str], noise: float) -> np.ndarray:
    rows = []
    for text in texts:
        seed = sum(map(ord, text)) % (2**32)
        base = np.random.default_rng(seed).standard_normal(32)
        rows.append(base + noise * np.random.default_rng(seed + 1).standard_normal(32))
    out = np.asarray(rows, dtype=np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def _encoder(seconds_per_text: float, noise: float = 0.0) -> calibration.Encode:
    def encode(texts: list[str]) -> np.ndarray:
        time.sleep(seconds_per_text * len(texts))
        return _vectors(texts, noise)

    return encode


def test_the_fastest_candidate_that_agrees_is_chosen() -> None:
    chosen = calibration.measure(
        {"f32": _encoder(0.002), "bf16": _encoder(0.0005, noise=0.01)}, budget_s=5
    )
    assert chosen.precision == "bf16"
    assert chosen.measured["bf16"].agrees
    assert chosen.measured["bf16"].per_s > chosen.measured["f32"].per_s


def test_a_faster_candidate_that_changes_the_answers_is_not_chosen() -> None:
    chosen = calibration.measure(
        {"f32": _encoder(0.002), "bf16": _encoder(0.0005, noise=0.5)}, budget_s=5
    )
    assert chosen.precision == "f32"
    assert not chosen.measured["bf16"].agrees
    assert chosen.measured["bf16"].min_cosine < calibration.MIN_COSINE


def test_a_slower_candidate_is_not_chosen() -> None:
    chosen = calibration.measure(
        {"f32": _encoder(0.0005), "bf16": _encoder(0.002, noise=0.01)}, budget_s=5
    )
    assert chosen.precision == "f32"


def test_a_probe_that_does_not_fit_in_the_budget_is_not_measured() -> None:
    # 40 ms a text: not even the smallest probe fits in 1 s, so f32 without measuring bf16.
    chosen = calibration.measure(
        {"f32": _encoder(0.04), "bf16": _encoder(0.001, noise=0.01)}, budget_s=1
    )
    assert (chosen.precision, chosen.source) == ("f32", calibration.OVER_BUDGET)
    assert chosen.measured == {}  # neither encoded the probe


KEY = {"cpu_model": "this one", "torch": "1"}


def test_the_cache_gives_back_what_was_written(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    calibration.write_cache(path, KEY, Calibration("bf16", "calibrated", {"f32": Measured(9.0)}))
    read = calibration.read_cache(path, KEY, ["f32", "bf16"])
    assert read is not None
    assert (read.precision, read.source, read.measured["f32"].per_s) == ("bf16", "cached", 9.0)


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[]",
        json.dumps({"format": 1, "key": {**KEY, "cpu_model": "another"}, "precision": "bf16"}),
        json.dumps({"format": 1, "key": KEY, "precision": "int4"}),
        json.dumps({"format": 99, "key": KEY, "precision": "bf16"}),
    ],
    ids=["corrupt", "not-an-object", "another-cpu", "unknown-precision", "other-format"],
)
def test_a_cache_that_is_not_this_hosts_is_ignored(tmp_path: Path, content: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(content)
    assert calibration.read_cache(path, KEY, ["f32", "bf16"]) is None

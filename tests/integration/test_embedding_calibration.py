"""The precision calibration with the real packaged model: what it chooses agrees with f32 on
the probe, a forced precision is kept, a bad cache is rebuilt, and vectors of f32 and bf16
processes search together (processes on one host may choose differently)."""

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from shared import calibration
from shared.embedding import Embedder, _openvino_runner, _OpenVinoRunner, calibration_file
from shared.embedding_probe import PROBE_QUERIES, PROBE_TEXTS
from shared.settings import Settings

BF16 = "bf16" in calibration.eligible_precisions(calibration.cpu_identity()[1])
needs_bf16 = pytest.mark.skipif(not BF16, reason="this CPU computes no bf16: nothing to choose")


@pytest.fixture(scope="module")
def model() -> Iterator[SentenceTransformer]:
    yield Embedder(Settings(), backend="torch").model


def _settings(tmp_path: Path, **changes: object) -> Settings:
    # A budget that fits the probe even on a busy machine (these tests are about the choice,
    # not its cost; bench/ and the logs give the cost).
    settings = Settings(embedding_calibration_dir=tmp_path, embedding_calibration_budget_s=30.0)
    return settings.model_copy(update=changes)


def _compiled_precision(runner: _OpenVinoRunner) -> str:
    return str(runner.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name())


def _probe(runner: _OpenVinoRunner) -> tuple[np.ndarray, np.ndarray]:
    return runner.encode(list(PROBE_TEXTS), 32), runner.encode(list(PROBE_QUERIES), 32)


@needs_bf16
def test_calibration_chooses_a_precision_that_agrees_with_f32_and_caches_it(
    model: SentenceTransformer, tmp_path: Path
) -> None:
    settings = _settings(tmp_path)
    runner, chosen = _openvino_runner(model, settings)
    assert chosen.source == "calibrated"
    assert set(chosen.measured) == {"f32", "bf16"}
    assert _compiled_precision(runner) == chosen.precision
    reference, _ = _openvino_runner(
        model, settings.model_copy(update={"embedding_openvino_precision": "f32"})
    )
    cosine, overlap = calibration.agreement(_probe(reference), _probe(runner))
    assert cosine >= 0.99 and overlap >= 0.95, (cosine, overlap)
    # A restart reads the choice instead of measuring again.
    again, cached = _openvino_runner(model, settings)
    assert (cached.source, cached.precision) == ("cached", chosen.precision)
    assert _compiled_precision(again) == chosen.precision


@pytest.mark.parametrize("precision", ["f32", "bf16"])
def test_a_forced_precision_is_honoured(
    model: SentenceTransformer, tmp_path: Path, precision: str
) -> None:
    if precision == "bf16" and not BF16:
        pytest.skip("this CPU computes no bf16")
    runner, chosen = _openvino_runner(
        model, _settings(tmp_path, embedding_openvino_precision=precision)
    )
    assert (chosen.precision, chosen.source) == (precision, "forced")
    assert _compiled_precision(runner) == precision
    assert list(tmp_path.iterdir()) == []  # nothing measured, nothing cached


@needs_bf16
@pytest.mark.parametrize("kind", ["corrupt", "foreign"])
def test_a_corrupt_or_foreign_cache_is_ignored_and_rebuilt(
    model: SentenceTransformer, tmp_path: Path, kind: str
) -> None:
    settings = _settings(tmp_path)
    path = Path(calibration_file(settings))
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "corrupt":
        path.write_text('{"format": 1, "key": {"cpu_mo')
    else:
        # Copied from another host: a valid file whose key is not this host's.
        foreign = {
            "format": 1,
            "key": {"cpu_model": "AMD EPYC 9R14", "cpu_flags_sha256": "0" * 64},
            "precision": "f32",
            "measured": {},
            "seconds": 1.0,
        }
        path.write_text(json.dumps(foreign))
    runner, chosen = _openvino_runner(model, settings)
    assert chosen.source == "calibrated"
    rebuilt = json.loads(path.read_text())
    assert rebuilt["key"]["cpu_model"] == calibration.cpu_identity()[0]
    assert rebuilt["precision"] == chosen.precision == _compiled_precision(runner)
    _, cached = _openvino_runner(model, settings)
    assert cached.source == "cached"


def _top(catalogue: np.ndarray, queries: np.ndarray, k: int) -> list[list[int]]:
    return [list(np.argsort(-row)[:k]) for row in queries @ catalogue.T]


def test_f32_and_bf16_vectors_search_together(model: SentenceTransformer, tmp_path: Path) -> None:
    # An API process that chose bf16 searches a catalogue a worker embedded in f32, and the
    # other way round: the answers must be those of one precision throughout.
    vectors = {}
    for precision in ("f32", "bf16"):
        runner, _ = _openvino_runner(
            model, _settings(tmp_path, embedding_openvino_precision=precision)
        )
        vectors[precision] = _probe(runner)
    (f32_texts, f32_queries), (bf16_texts, bf16_queries) = vectors["f32"], vectors["bf16"]
    reference = _top(f32_texts, f32_queries, 10)
    for catalogue, queries in ((f32_texts, bf16_queries), (bf16_texts, f32_queries)):
        mixed = _top(catalogue, queries, 10)
        assert [r[0] for r in mixed] == [r[0] for r in reference]
        overlap = np.mean(
            [len(set(a) & set(b)) / 10 for a, b in zip(mixed, reference, strict=True)]
        )
        assert overlap >= 0.95, overlap

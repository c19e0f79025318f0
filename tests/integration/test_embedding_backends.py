"""The OpenVINO runtime computes the same vectors as sentence-transformers on torch, with the
real packaged model: search answers must not change with `EMBEDDING_BACKEND`."""

from pathlib import Path

import numpy as np
import pytest

from shared.embedding import Embedder
from shared.settings import Settings

TEXTS = [
    "Python for everybody",
    "An introduction to machine learning: supervised learning, regression and classification "
    "with scikit-learn, model evaluation and the bias-variance trade-off. " * 12,  # truncated
    "Financial accounting basics",
    "Negotiation skills, persuasion and conflict resolution",
    "Déjà vu: 数据结构与算法 — структуры данных",
    "",
    "x",
]


@pytest.fixture(scope="module")
def vectors() -> dict[str, np.ndarray]:
    # Batches of different lengths and padding; f32, whatever calibration would choose here.
    settings = Settings(embedding_batch_size=3, embedding_openvino_precision="f32")
    return {
        backend: Embedder(settings, backend=backend).encode(TEXTS)
        for backend in ("torch", "openvino")
    }


def test_openvino_vectors_equal_torch_vectors(vectors: dict[str, np.ndarray]) -> None:
    torch_vectors, openvino_vectors = vectors["torch"], vectors["openvino"]
    assert openvino_vectors.shape == torch_vectors.shape == (len(TEXTS), 384)
    assert openvino_vectors.dtype == np.float32
    cosine = (torch_vectors * openvino_vectors).sum(axis=1)
    assert cosine.min() > 0.9999, cosine
    assert np.allclose(np.linalg.norm(openvino_vectors, axis=1), 1.0, atol=1e-5)


def test_order_of_texts_is_kept(vectors: dict[str, np.ndarray]) -> None:
    # Each text's vector lands in its own row even though batches are sorted by length.
    settings = Settings(embedding_batch_size=2, embedding_openvino_precision="f32")
    reversed_vectors = Embedder(settings, backend="openvino").encode(TEXTS[::-1])
    assert np.allclose(reversed_vectors[::-1], vectors["openvino"], atol=1e-5)


def test_openvino_computes_in_the_precision_set() -> None:
    embedder = Embedder(Settings(embedding_openvino_precision="f32"), backend="openvino")
    embedder.load()
    assert embedder._runner is not None
    precision = embedder._runner.compiled.get_property("INFERENCE_PRECISION_HINT")
    assert precision.get_type_name() == "f32"


def test_bf16_vectors_stay_close_to_torch(vectors: dict[str, np.ndarray]) -> None:
    # bf16 is chosen where calibration measures it faster; where the CPU has no bf16 at all
    # OpenVINO computes f32 instead. Either way the vectors must stay close to the reference.
    settings = Settings(embedding_batch_size=3, embedding_openvino_precision="bf16")
    bf16 = Embedder(settings, backend="openvino").encode(TEXTS)
    cosine = (vectors["torch"] * bf16).sum(axis=1)
    assert cosine.min() > 0.99, cosine


def test_a_model_openvino_cannot_run_is_refused_clearly() -> None:
    from sentence_transformers import SentenceTransformer

    from shared.embedding import _OpenVinoRunner

    model = Embedder(Settings(), backend="torch").model
    cls_only = SentenceTransformer(modules=[model[0]], device="cpu")
    with pytest.raises(ValueError, match="EMBEDDING_BACKEND=torch"):
        _OpenVinoRunner(cls_only, Settings())


LOAD_AND_COUNT = """
import multiprocessing.process, sys
started = []
original = multiprocessing.process.BaseProcess.start
def start(self):
    started.append(self)
    return original(self)
multiprocessing.process.BaseProcess.start = start
from shared.embedding import Embedder
from shared.settings import Settings
Embedder(Settings(), backend="openvino").encode(["hello"])
print(len(started))
"""


def test_loading_openvino_reports_nothing_and_writes_nothing_home(tmp_path: Path) -> None:
    # OpenVINO's converter sends usage events to Google Analytics unless the machine opted out
    # or CI=true, each from a process of its own; a service must send nothing anywhere.
    import os
    import subprocess
    import sys

    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in {"CI", "TF_BUILD", "JENKINS_URL"}}
    env |= {"HOME": str(home), "PYTHONPATH": str(Path(__file__).parents[2])}
    result = subprocess.run(
        [sys.executable, "-c", LOAD_AND_COUNT],
        env=env, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    assert result.stdout.strip().splitlines()[-1] == "0", result.stdout
    assert list(home.iterdir()) == []

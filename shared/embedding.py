"""The sentence-transformers model: loaded once per process, on first use (never at import, so a
Celery parent does not load torch before it forks its children).

Two runtimes compute the same model (setting `EMBEDDING_BACKEND`):
- `torch`: sentence-transformers as is;
- `openvino`: the same transformer converted in memory from the packaged weights at load time,
  run by OpenVINO, followed by the model's own pooling (mean over the attention mask) and L2
  normalisation. Measured at 1.1x to 4x torch's speed depending on the host (bench/embedding.py,
  docs/benchmarks.md). In f32 its vectors equal torch's to within float rounding; bf16 (the
  default only where the CPU has AMX, `EMBEDDING_OPENVINO_PRECISION`) is close to them.
"""

import os
import sys
import threading
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from shared.settings import Settings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


class Embedder:
    def __init__(self, settings: Settings, backend: str | None = None) -> None:
        self._settings = settings
        self.backend = backend or settings.embedding_backend
        self._model: SentenceTransformer | None = None
        self._runner: _OpenVinoRunner | None = None
        self._lock = threading.Lock()

    @property
    def model(self) -> "SentenceTransformer":
        with self._lock:
            if self._model is None:
                self._model = self._load()
                if self.backend == "openvino":
                    self._runner = _OpenVinoRunner(self._model, self._settings)
            return self._model

    def load(self) -> None:
        """Load (and, for OpenVINO, convert and compile) now rather than on the first call."""
        _ = self.model

    def _load(self) -> "SentenceTransformer":
        # The weights ship inside a package; nothing may be fetched from a hub at run time.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        if self._settings.embedding_threads:
            torch.set_num_threads(self._settings.embedding_threads)
        model = SentenceTransformer(self._settings.model_path(), device="cpu")
        limit = self._settings.embedding_max_tokens
        if limit and (model.max_seq_length is None or limit < model.max_seq_length):
            model.max_seq_length = limit
        return model

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text (cosine similarity = dot product)."""
        if not texts:
            return np.zeros((0, self._settings.embedding_dim), dtype=np.float32)
        model = self.model
        if self._runner is not None:
            return self._runner.encode(texts, self._settings.embedding_batch_size)
        vectors = model.encode(
            texts,
            batch_size=self._settings.embedding_batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


def openvino_precision(setting: str, cpu_flags: set[str] | None = None) -> str:
    """The precision OpenVINO computes in: bf16 only where AMX runs it natively."""
    if setting != "auto":
        return setting
    if cpu_flags is None:
        cpu_flags = cpu_flags_of_this_machine()
    return "bf16" if "amx_bf16" in cpu_flags else "f32"


def cpu_flags_of_this_machine() -> set[str]:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _without_usage_reports() -> None:
    """Keep OpenVINO's converter from reporting usage to Google Analytics.

    Unless the machine opted out (a file under $HOME) or CI=true, importing the converter and
    each conversion send events, each from a new process that tries the network for seconds:
    data leaving a service, a $HOME write and dozens of processes at every start (measured: 38
    in the first 7 s of a worker). Without the `openvino_telemetry` package the converter uses
    its own no-op stand-in; a None entry in sys.modules makes that import fail."""
    if "openvino_telemetry" not in sys.modules:
        sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]


class _OpenVinoRunner:
    """The model's transformer compiled by OpenVINO; tokenisation, pooling and normalisation
    as the sentence-transformers pipeline does them."""

    def __init__(self, model: "SentenceTransformer", settings: Settings) -> None:
        _without_usage_reports()
        import openvino as ov

        modules = [type(module).__name__ for module in model]
        pooling = model[1].get_config_dict() if len(model) > 1 else {}  # type: ignore[operator]
        if modules != ["Transformer", "Pooling", "Normalize"] or pooling.get("pooling_mode") != (
            "mean"
        ):
            raise ValueError(
                "EMBEDDING_BACKEND=openvino supports Transformer + mean Pooling + Normalize "
                f"models; this one is {modules} ({pooling}). Use EMBEDDING_BACKEND=torch."
            )
        self.tokenizer = model.tokenizer
        self.max_length = model.max_seq_length
        self.dim = settings.embedding_dim
        example = self.tokenizer(["a", "b c"], padding=True, return_tensors="pt")
        with warnings.catch_warnings():
            # Tracing notes branches on shapes; none of them depends on the input's length.
            warnings.simplefilter("ignore")
            converted = ov.convert_model(model[0].auto_model, example_input=dict(example))
        config: dict[str, Any] = {
            "PERFORMANCE_HINT": settings.embedding_openvino_hint,
            "INFERENCE_PRECISION_HINT": openvino_precision(settings.embedding_openvino_precision),
        }
        if settings.embedding_threads:
            config["INFERENCE_NUM_THREADS"] = settings.embedding_threads
        self.compiled = ov.Core().compile_model(converted, "CPU", config)
        self.input_names = {port.get_any_name() for port in self.compiled.inputs}

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        # Longest first, as sentence-transformers does: batches of similar length pad little.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        request = self.compiled.create_infer_request()  # one per call: callers may be threads
        for start in range(0, len(texts), batch_size):
            index = order[start : start + batch_size]
            features = self.tokenizer(
                [texts[i] for i in index],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="np",
            )
            inputs = {name: value for name, value in features.items() if name in self.input_names}
            tokens = request.infer(inputs)[self.compiled.outputs[0]]
            mask = features["attention_mask"][..., None].astype(np.float32)
            pooled = (tokens * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
            out[index] = pooled / np.clip(
                np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None
            )
        return out


_embedders: dict[tuple[str, str], Embedder] = {}


def get_embedder(settings: Settings) -> Embedder:
    """The process's embedder (one model per process, whatever the number of callers)."""
    key = (settings.model_path(), settings.embedding_backend)
    if key not in _embedders:
        _embedders[key] = Embedder(settings)
    return _embedders[key]

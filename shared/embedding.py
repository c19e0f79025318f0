"""The sentence-transformers model: loaded once per process, on first use (never at import, so a
Celery parent does not load torch before it forks its children).

Two runtimes compute the same model (setting `EMBEDDING_BACKEND`):
- `torch`: sentence-transformers as is;
- `openvino`: the same transformer converted in memory from the packaged weights at load time,
  run by OpenVINO, followed by the model's own pooling (mean over the attention mask) and L2
  normalisation. Measured at 1.1x to 4x torch's speed depending on the host (bench/embedding.py,
  docs/benchmarks.md). In f32 its vectors equal torch's to within float rounding; bf16 vectors
  are close to them, and faster or slower than f32 depending on the CPU: with
  `EMBEDDING_OPENVINO_PRECISION=auto` each process measures both on a fixed probe once per host
  (shared/calibration.py) and computes in the fastest that agrees with f32.
"""

import logging
import os
import sys
import threading
import time
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from shared import calibration
from shared.calibration import Calibration
from shared.settings import Settings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)


class Embedder:
    def __init__(self, settings: Settings, backend: str | None = None) -> None:
        self._settings = settings
        self.backend = backend or settings.embedding_backend
        self._model: SentenceTransformer | None = None
        self._runner: _OpenVinoRunner | None = None
        self._lock = threading.Lock()
        # What computes the vectors, known once loaded: "f32" or "bf16", and how it was chosen.
        self.calibration: Calibration | None = None

    @property
    def precision(self) -> str | None:
        return self.calibration.precision if self.calibration else None

    @property
    def model(self) -> "SentenceTransformer":
        with self._lock:
            if self._model is None:
                model = self._load()
                if self.backend == "openvino":
                    self._runner, self.calibration = _openvino_runner(model, self._settings)
                else:
                    self.calibration = Calibration("f32", "only")
                self._model = model
                _report(self.backend, self.calibration)
            return self._model

    def load(self) -> None:
        """Load (and, for OpenVINO, convert, calibrate and compile) now rather than on the first
        call: processes call this at start-up, before they serve, so calibration never runs on
        a request."""
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


def _report(backend: str, chosen: Calibration) -> None:
    from shared.metrics import observe_embedding_choice

    measured = ", ".join(
        f"{name} {m.per_s:.1f} texts/s (min cosine {m.min_cosine:.4f}, overlap {m.overlap:.3f})"
        for name, m in chosen.measured.items()
    )
    log.info(
        "embedding: backend %s, precision %s (%s%s)",
        backend,
        chosen.precision,
        chosen.source,
        f"; probe of {chosen.probe_texts} texts: {measured}; {chosen.seconds:.1f} s"
        if measured
        else "",
    )
    observe_embedding_choice(backend, chosen.precision, chosen.source)


def calibration_key(settings: Settings) -> dict[str, Any]:
    """The cache key of OpenVINO's calibration under these settings."""
    return calibration.cache_key(
        settings.model_path(),
        {
            "backend": "openvino",
            "hint": settings.embedding_openvino_hint,
            "threads": settings.embedding_threads,
            "batch_size": settings.embedding_batch_size,
            "max_tokens": settings.embedding_max_tokens,
        },
    )


def calibration_file(settings: Settings) -> str:
    directory = settings.embedding_calibration_dir or calibration.default_cache_dir()
    return str(calibration.cache_path(directory, calibration_key(settings)))


def _openvino_runner(
    model: "SentenceTransformer", settings: Settings
) -> tuple["_OpenVinoRunner", Calibration]:
    """The runner in the precision set, or, with `auto`, in the one calibration chose (read from
    the host's cache, or measured now under the host's lock and cached)."""
    converted = _convert(model)
    setting = settings.embedding_openvino_precision
    if setting != "auto":
        return _OpenVinoRunner(model, settings, setting, converted), Calibration(setting, "forced")
    eligible = calibration.eligible_precisions(calibration.cpu_identity()[1])
    if len(eligible) == 1:
        return _OpenVinoRunner(model, settings, eligible[0], converted), Calibration(
            eligible[0], "only"
        )
    key = calibration_key(settings)
    path = calibration.cache_path(
        settings.embedding_calibration_dir or calibration.default_cache_dir(), key
    )
    chosen = calibration.read_cache(path, key, eligible)
    if chosen is None:
        with calibration.host_lock(path):
            # Another process may have measured while this one waited for the lock.
            chosen = calibration.read_cache(path, key, eligible)
            if chosen is None:
                started = time.perf_counter()
                runners = {p: _OpenVinoRunner(model, settings, p, converted) for p in eligible}
                compiled_s = time.perf_counter() - started
                chosen = calibration.measure(
                    {p: _encoder(r, settings.embedding_batch_size) for p, r in runners.items()},
                    budget_s=max(0.0, settings.embedding_calibration_budget_s - compiled_s),
                )
                chosen.seconds += compiled_s
                if chosen.source == calibration.OVER_BUDGET:
                    log.warning(
                        "embedding: calibration did not fit in %.0f s here; f32 until a start "
                        "measures it (EMBEDDING_CALIBRATION_BUDGET_S)",
                        settings.embedding_calibration_budget_s,
                    )
                else:
                    calibration.write_cache(path, key, chosen)
                return runners[chosen.precision], chosen
    return _OpenVinoRunner(model, settings, chosen.precision, converted), chosen


def _encoder(runner: "_OpenVinoRunner", batch_size: int) -> calibration.Encode:
    def encode(texts: list[str]) -> np.ndarray:
        return runner.encode(texts, batch_size)

    return encode


def _convert(model: "SentenceTransformer") -> Any:
    """The model's transformer as an OpenVINO model (compiled per precision afterwards)."""
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
    example = model.tokenizer(["a", "b c"], padding=True, return_tensors="pt")
    with warnings.catch_warnings():
        # Tracing notes branches on shapes; none of them depends on the input's length.
        warnings.simplefilter("ignore")
        return ov.convert_model(model[0].auto_model, example_input=dict(example))


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

    def __init__(
        self,
        model: "SentenceTransformer",
        settings: Settings,
        precision: str = "f32",
        converted: Any = None,
    ) -> None:
        if converted is None:
            converted = _convert(model)
        import openvino as ov

        self.tokenizer = model.tokenizer
        self.max_length = model.max_seq_length
        self.dim = settings.embedding_dim
        self.precision = precision
        config: dict[str, Any] = {
            "PERFORMANCE_HINT": settings.embedding_openvino_hint,
            "INFERENCE_PRECISION_HINT": precision,
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

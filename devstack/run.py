"""README command 1: the whole service on this machine with its embedded defaults.

Checks PostgreSQL and RabbitMQ, starts a Milvus Lite server, migrates, starts the API, a worker,
beat, the sweeper, Flower and the catalogue explorer, loads the demo catalog through the write
API, prints where everything is, restarts a process that exits or hangs, and stops every
process it started on Ctrl-C.
"""

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from kombu import Connection

from devstack.management import management_ui
from devstack.stack import ROOT, LocalStack, endpoint, port_open
from shared.settings import get_settings

DEMO_CATALOG = Path(__file__).with_name("demo_catalog.json")
HINT = "start it with `docker compose up -d postgres rabbitmq` (or your system's service manager)"


def fail(message: str) -> None:
    print(f"coursewise: {message}", file=sys.stderr)
    raise SystemExit(1)


def check_services() -> None:
    settings = get_settings()
    host, port = endpoint(settings.database_url, 5432)
    if not port_open(host, port):
        fail(f"PostgreSQL is not reachable at {host}:{port}; {HINT}.")
    host, port = endpoint(settings.broker_url, 5672)
    try:
        with Connection(settings.broker_url, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1, timeout=3)
    except Exception as exc:
        fail(f"RabbitMQ is not reachable at {host}:{port} ({type(exc).__name__}); {HINT}.")


def local_admin_key(stack: LocalStack, key_file: Path) -> str:
    """The key from an earlier run if it still works, else a new one (kept owner-only)."""
    if key_file.exists():
        key = key_file.read_text().strip()
        with stack.client(key=key) as api:
            if api.get("/v1/admin/keys").status_code == 200:
                return key
    key = stack.create_key("local-admin", ["admin"])
    key_file.touch(mode=0o600)
    key_file.write_text(key + "\n")
    return key


def load_demo_catalog(stack: LocalStack, timeout: float = 300) -> dict[str, Any]:
    courses = json.loads(DEMO_CATALOG.read_text())
    with stack.client() as api:
        accepted = api.post("/v1/courses/bulk", json=courses)
        accepted.raise_for_status()
        status_url = accepted.json()["status_url"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            task = api.get(status_url).json()
            if task["status"] in ("succeeded", "failed"):
                return task
            time.sleep(0.5)
    fail(f"the demo catalog was not applied within {timeout:.0f}s; see var/local/worker.log")
    raise AssertionError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="exit after the demo catalog loads")
    parser.add_argument(
        "--no-milvus-lite",
        action="store_true",
        help="use the Milvus already serving COURSEWISE_MILVUS_URI instead of starting Milvus Lite",
    )
    parser.add_argument("--preflight", action="store_true", help="only check the services")
    args = parser.parse_args()
    if args.preflight:
        check_services()
        return

    settings = get_settings()
    var_dir = Path(os.environ.get("COURSEWISE_VAR_DIR", ROOT / "var" / "local"))
    # The demo answers reads without a key (writes still need one); production keeps the
    # default, off.
    env = {
        "COURSEWISE_MILVUS_URI": settings.milvus_uri,
        "COURSEWISE_PUBLIC_READS": os.environ.get("COURSEWISE_PUBLIC_READS", "true"),
    }
    api_port = int(os.environ.get("COURSEWISE_API_PORT", "8000"))
    flower_port = int(os.environ.get("COURSEWISE_FLOWER_PORT", "5555"))
    explorer_port = int(os.environ.get("COURSEWISE_EXPLORER_PORT", "8501"))
    worker_metrics_port = settings.worker_metrics_port or 9808
    stack = LocalStack(env=env, var_dir=var_dir, api_port=api_port, flower_port=flower_port)
    milvus_host, _ = endpoint(settings.milvus_uri, 19530)
    embedded_milvus = milvus_host in ("127.0.0.1", "localhost") and not args.no_milvus_lite

    check_services()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with stack.running():
        try:
            if embedded_milvus:
                print("starting Milvus Lite ...", flush=True)
                stack.start_milvus(var_dir / "milvus-data")
            print("migrating the database ...", flush=True)
            stack.prestart()
            print("starting the workers, beat, the API and Flower ...", flush=True)
            stack.start_worker(metrics_port=worker_metrics_port)
            stack.start_training_worker()
            stack.start_beat()
            stack.start_sweeper()
            stack.start_flower()
            stack.start_api()
            print("starting the catalogue explorer ...", flush=True)
            stack.start_explorer(explorer_port)
        except RuntimeError as exc:
            fail(str(exc))
        stack.api_key = local_admin_key(stack, var_dir / "admin-key")
        task = load_demo_catalog(stack)
        broker_host, _ = endpoint(settings.broker_url, 5672)
        ui = management_ui(broker_host, lambda host, port: port_open(host, port))
        ui_line = f"{ui.url}  ({ui.note})" if ui.url else f"not available: {ui.note}"
        counts = task["counts"]
        print(
            f"demo catalog: {counts['applied']} of {counts['received']} courses applied "
            f"({task['status']})"
        )
        print(
            "\nCoursewise is running:\n"
            f"  admin API key  {stack.api_key}  (also in {var_dir}/admin-key)\n"
            f"                 send it as `Authorization: Bearer <key>`; reads need no key here\n"
            f"  API docs       {stack.api_url}/docs\n"
            f"  explorer       http://127.0.0.1:{explorer_port}\n"
            f"  API metrics    {stack.api_url}/metrics\n"
            f"  worker metrics http://127.0.0.1:{worker_metrics_port}/metrics\n"
            f"  try            {stack.api_url}/v1/search?q=learn+python+for+data+analysis\n"
            f"  Flower         http://127.0.0.1:{flower_port}\n"
            f"  RabbitMQ UI    {ui_line}\n"
            f"  logs           {var_dir}/*.log\n"
            "Press Ctrl-C to stop everything.",
            flush=True,
        )
        if args.smoke:
            return
        try:
            # A process that exits or hangs (its heartbeat goes stale) is started again.
            while True:
                for restarted in stack.supervise():
                    print(f"restarted {restarted}; see {var_dir}/", flush=True)
                time.sleep(5)
        except KeyboardInterrupt:
            print("\nstopping ...")


if __name__ == "__main__":
    main()

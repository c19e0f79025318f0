import logging
import os


def configure_logging() -> None:
    level = os.environ.get("COURSEWISE_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"
    )

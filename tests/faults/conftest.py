"""One stack on one RabbitMQ node of its own for the fault suite and the short soak: the faults
stop, kill and starve that node, never the machine's broker."""

from collections.abc import Iterator

import pytest

from shared.settings import Settings
from tests.support import broker as own
from tests.support.broker import own_broker
from tests.support.faults import Rig
from tests.support.stack import RUN_ID, Names, isolated_env, running_stack


@pytest.fixture(scope="package")
def rig() -> Iterator[Rig]:
    if not own.available():
        pytest.skip("needs a RabbitMQ installation (rabbitmq-server and epmd)")
    names = Names(f"{RUN_ID}f")
    with (
        own_broker(f"{RUN_ID}f") as broker,
        isolated_env(names, broker) as env,
        running_stack(env, "faults") as stack,
    ):
        # pydantic-settings types its own _-prefixed init options; these keys are all fields
        settings = Settings(**{k.removeprefix("COURSEWISE_").lower(): v for k, v in env.items()})  # type: ignore[arg-type]
        yield Rig(stack, settings, names, broker)

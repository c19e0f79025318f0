"""The soak (bench/soak.py), short: 3 minutes of mixed writes and reads with random faults from
the fault suite, on the fault suite's stack and RabbitMQ node (after its scenarios; one stack
start less). Its correctness goals must hold: nothing lost or applied twice, every accepted
write applied or failed with a reason, the catalogue and interactions equal to the model, and
no write queued longer than 5 minutes (a bound on waiting, not a speed figure). The figures are
printed in the run's summary."""

import os

from bench import soak
from tests.support.diagnostics import capture
from tests.support.faults import Rig
from tests.support.reports import FAULT_REPORT

MINUTES = float(os.environ.get("COURSEWISE_SOAK_MINUTES", "3"))
# Half the soak's ceiling of 20: the short run shares CI's machine with nothing, but its
# faults include a broker kill after which the worker reconnects and reloads its model.
WRITES_PER_S = float(os.environ.get("COURSEWISE_SOAK_WRITES_PER_S", "10"))


def test_a_short_soak_under_random_faults_loses_nothing(rig: Rig) -> None:
    seed = int(os.environ.get("COURSEWISE_SOAK_SEED", "18"))
    try:
        result = soak.soak(rig, MINUTES, seed, writes_per_s=WRITES_PER_S, clients=4)
    except BaseException:
        print(capture(rig.stack, rig.broker, rig.names, "soak"))
        raise
    FAULT_REPORT.append(soak.describe(result))
    print(result)
    if not soak.ok(result):
        print(capture(rig.stack, rig.broker, rig.names, "soak"))

    assert result["accepted"] > 0
    assert result["lost"] == 0
    assert result["duplicated"] == 0
    assert result["failed_without_reason"] == 0
    assert result["rejected"] == 0, "writes that never answered 202 despite retries"
    assert not result["unexpected_4xx"]
    assert result["state_matches_model"]
    assert not [f for f in result["faults"] if f["error"]], "a fault could not be injected"
    assert result["longest_queued_s"] <= soak.QUEUED_BOUND_S

"""The randomized fault campaign: a small seeded sample by default, 200+ scenarios in the slow suite."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.conftest import endpoint_for
from tests.support.campaign import run_campaign

if TYPE_CHECKING:
    from tests.support.servers import ServerInfo


def check(server: ServerInfo, scenarios: int, seed: int) -> None:
    tally = run_campaign(endpoint_for(server), scenarios, seed)
    print(tally.table())
    assert tally.failed_badly == 0, tally.bad[:5]
    assert tally.scenarios == scenarios
    assert tally.succeeded + tally.failed_cleanly == scenarios
    assert tally.succeeded > 0


def test_campaign_sample(openssh_server: ServerInfo) -> None:
    check(openssh_server, scenarios=10, seed=1)


@pytest.mark.slow
def test_campaign_200_scenarios(openssh_server: ServerInfo) -> None:
    check(openssh_server, scenarios=200, seed=20261125)

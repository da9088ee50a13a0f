"""The randomized fault campaign: a small seeded sample by default, 200+ scenarios in the slow suite."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.conftest import endpoint_for, sha256_file, write_random
from tests.support.campaign import Campaign, run_campaign

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.servers import ServerInfo


def check(server: ServerInfo, scenarios: int, seed: int, *, upload: bool = False) -> None:
    tally = run_campaign(endpoint_for(server), scenarios, seed, upload=upload)
    print(tally.table())
    assert tally.failed_badly == 0, tally.bad[:5]
    assert tally.scenarios == scenarios
    assert tally.succeeded + tally.failed_cleanly == scenarios
    assert tally.succeeded > 0


@pytest.mark.parametrize("upload", [False, True], ids=["download", "upload"])
def test_campaign_sample(openssh_server: ServerInfo, upload: bool) -> None:
    check(openssh_server, scenarios=10, seed=1, upload=upload)


@pytest.mark.slow
# 200 scenarios take about five minutes on a quiet 2-core machine: the default 300 s limit is too tight.
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("upload", [False, True], ids=["download", "upload"])
def test_campaign_200_scenarios(openssh_server: ServerInfo, upload: bool) -> None:
    check(openssh_server, scenarios=200, seed=20261125, upload=upload)


@pytest.mark.parametrize(
    "kill_at",
    [
        ("replace", 1, False),  # before the first sidecar is in place
        ("replace", 1, True),
        ("replace", 2, False),  # later sidecar writes, or the final rename of the .part
        ("replace", 2, True),
        ("replace", 3, False),
        ("replace", 3, True),
        ("fsync", 2, False),
        ("fsync", 3, True),
        ("unlink", 1, True),  # after publishing: sidecar and lock removal
        ("unlink", 2, False),
    ],
)
def test_sigkill_on_the_durability_path_never_leaves_a_wrong_file(
    openssh_server: ServerInfo, tmp_path: Path, kill_at: tuple[str, int, bool]
) -> None:
    """SIGKILL just before or after a rename, fsync or unlink; the next try must finish correctly."""
    campaign = Campaign(endpoint_for(openssh_server), tmp_path, seed=0)
    remote, local = tmp_path / "remote.bin", tmp_path / "local" / "file.bin"
    local.parent.mkdir()
    digest = write_random(remote, 700_000, seed=7)
    published: set[str | None] = {None}
    try:
        outcome = campaign.one_try(remote, local, "kill_at", published, final=False, kill_at=kill_at)
        assert outcome == {"error": "killed"}, "the kill point must be reached"
        assert not local.exists() or sha256_file(local) == digest, "a killed try left a wrong file"
        campaign.one_try(remote, local, "none", published, final=True)
    finally:
        campaign.close()
    assert campaign.tally.failed_badly == 0, campaign.tally.bad
    assert campaign.tally.succeeded == 1
    assert sha256_file(local) == digest
    assert sorted(p.name for p in local.parent.iterdir()) == ["file.bin"]

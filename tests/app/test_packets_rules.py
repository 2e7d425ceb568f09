"""The clearance rule: classification x clearance x channel minimum decides exactly."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from app.ledger.refusal import Reason
from app.packets.access import Refusal, clearance_refusal, submission_refusal
from app.packets.errors import BelowChannelMinimum, InsufficientClearance, NoClearance
from tests.app.conftest import World
from tests.app.test_packets_support import last_entry, make_channel, seal, submit

LEVELS = ["RESTRICTED", "CONFIDENTIAL", "SECRET"]


@given(level=st.sampled_from([None, 1, 2, 3]), classification=st.integers(1, 3),
       minimum=st.integers(1, 3))
def test_submission_rule_is_minimum_le_classification_le_clearance(
        level: int | None, classification: int, minimum: int) -> None:
    allowed = level is not None and minimum <= classification <= level
    refusal = submission_refusal(level, classification, minimum)
    assert (refusal is None) == allowed
    if level is None:
        assert refusal == Refusal(NoClearance, Reason.NO_CLEARANCE, "no clearance in force")
    elif classification > level:
        assert refusal == Refusal(InsufficientClearance, Reason.CLEARANCE_TOO_LOW,
                                  "your clearance is below the classification",
                                  f"clearance {LEVELS[level - 1]} is "
                                  f"below {LEVELS[classification - 1]}")
    elif not allowed:
        assert refusal == Refusal(BelowChannelMinimum, Reason.BELOW_CHANNEL_MINIMUM,
                                  "the classification is below the channel's minimum",
                                  f"classification {LEVELS[classification - 1]} is below the "
                                  f"channel minimum {LEVELS[minimum - 1]}")


@given(level=st.sampled_from([None, 1, 2, 3]), classification=st.integers(1, 3))
def test_access_rule_is_clearance_in_force_at_or_above_classification(
        level: int | None, classification: int) -> None:
    assert (clearance_refusal(level, classification) is None) == (
        level is not None and level >= classification)


def test_every_combination_is_decided_by_the_server_as_the_rule_says(world: World) -> None:
    world.state("MX")
    recipient = world.liaison("rec", "MX", level="SECRET")
    senders = {lvl: world.liaison(f"s{lvl}", "CO", level=name)
               for lvl, name in enumerate(LEVELS, 1)}
    for minimum, name in enumerate(LEVELS, 1):
        make_channel(world, f"min{minimum}", [recipient, *senders.values()], name)
    for sender_level, minimum, classification in itertools.product((1, 2, 3), repeat=3):
        sender = senders[sender_level]
        sealed = seal(sender, [recipient], f"min{minimum}",
                      classification=LEVELS[classification - 1])
        allowed = minimum <= classification <= sender_level
        response = submit(world, sender, sealed, upload_streams=allowed)
        case = (sender_level, minimum, classification)
        entry = last_entry(world)
        assert entry.action == "packet.submit", case
        if allowed:
            assert (response.status_code, entry.outcome) == (201, "granted"), case
        else:
            assert (response.status_code, entry.outcome) == (403, "denied"), case
            expected = ("insufficient-clearance" if classification > sender_level
                        else "below-channel-minimum")
            assert response.json()["type"].endswith("/" + expected), case
            assert entry.reason == ("clearance-too-low" if classification > sender_level
                                    else "below-channel-minimum"), case

"""A key holder that is not a key set: sealing, opening, receipts and shares only ask it.

The command line's agent (client.agent.AgentKeys) is such a holder; here a
holder that delegates to a key set and counts the calls stands for it, so
the crypto front is shown to need nothing but ``public``, ``sign`` and
``unwrap`` (the key set itself is never reached from outside the holder).
"""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto import (
    BadWrappedKey,
    ContentKey,
    InvalidArgument,
    KeyHolder,
    LiaisonKeys,
    LiaisonPublicKeys,
    make_receipt,
    open_envelope,
    open_packet,
    share_content_key,
    sign,
    verify_key_share,
    verify_receipt,
)
from crypto.wrap import unwrap_content_key, wrap_content_key
from tests.crypto.conftest import META, NOW, OUTSIDER, RECIPIENTS, SENDER, det_random, publics


class CountingHolder:
    """Holds a key set out of reach; answers only the three calls of :class:`KeyHolder`."""

    def __init__(self, keys: LiaisonKeys) -> None:
        self.__keys = keys
        self.calls: list[str] = []

    @property
    def public(self) -> LiaisonPublicKeys:
        return self.__keys.public

    def sign(self, payload_type: str, payload: bytes) -> bytes:
        self.calls.append(f"sign {payload_type}")
        return self.__keys.sign(payload_type, payload)

    def unwrap(self, wrapped: bytes, packet_id: str, recipient_id: str) -> ContentKey:
        self.calls.append("unwrap")
        return self.__keys.unwrap(wrapped, packet_id, recipient_id)


def test_a_packet_sealed_and_opened_by_holders_round_trips() -> None:
    from crypto import seal_packet

    sender: KeyHolder = CountingHolder(SENDER)
    recipient = CountingHolder(RECIPIENTS["r0"])
    sealed = seal_packet(sender, "sender", publics(["r0"]), META, b"hola",
                         [("a.txt", b"adjunto")], now=NOW, random=det_random("holder"))
    opened = open_packet(sealed, SENDER.public, "r0", recipient)
    assert opened.message == b"hola"
    envelope = open_envelope(sealed.envelope, SENDER.public, "r0", recipient,
                             io.BytesIO(sealed.streams[0]))
    receipt = make_receipt(envelope, "r0", recipient, now=NOW)
    verify_receipt(receipt.receipt, receipt.signature, RECIPIENTS["r0"].public)
    signed = share_content_key(envelope, recipient, "r0", "outsider", OUTSIDER.public, now=NOW)
    share = verify_key_share(signed.share, signed.signature, RECIPIENTS["r0"].public)
    assert open_packet(sealed, SENDER.public, "outsider", OUTSIDER, share=share).message == b"hola"
    assert sender.calls == [  # type: ignore[attr-defined]
        "sign application/vnd.cadena.packet-statement.v1+json",
        "sign application/vnd.cadena.packet-header.v1+json"]
    assert recipient.calls == ["unwrap", "unwrap",  # open_packet, then open_envelope
                               "sign application/vnd.cadena.receipt.v1+json",
                               "sign application/vnd.cadena.key-share.v1+json"]


@given(payload=st.binary(max_size=512))
def test_a_key_sets_own_signature_is_the_front_functions(payload: bytes) -> None:
    kind = "application/vnd.cadena.receipt.v1+json"
    assert SENDER.sign(kind, payload) == sign(SENDER.signing_key, kind, payload)


def test_a_key_set_unwraps_as_the_wrap_module_does() -> None:
    key = ContentKey(det_random("ck")(32))
    packet_id = "01890f6e-7b7a-7cc3-98c4-dc0c0c07398f"
    wrapped = wrap_content_key(key, packet_id, "r0", RECIPIENTS["r0"].public)
    assert RECIPIENTS["r0"].unwrap(wrapped, packet_id, "r0") == key
    assert unwrap_content_key(wrapped, packet_id, "r0", RECIPIENTS["r0"]) == key
    with pytest.raises(BadWrappedKey):
        RECIPIENTS["r0"].unwrap(wrapped, packet_id, "r1")  # bound to the recipient id


def test_a_key_set_refuses_an_unknown_payload_type() -> None:
    with pytest.raises(InvalidArgument):
        SENDER.sign("application/x-anything", b"x")

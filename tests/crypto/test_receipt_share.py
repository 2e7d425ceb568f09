"""Receipts and onward sharing: round trips, and tampering fails closed."""

from __future__ import annotations

import hashlib
import io
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto import (
    BadSignature,
    BadWrappedKey,
    NotARecipient,
    make_receipt,
    open_envelope,
    open_packet,
    share_content_key,
    verify_key_share,
    verify_receipt,
    verify_signature,
)
from crypto.signing import RECEIPT_TYPE, STATEMENT_TYPE
from tests.crypto.conftest import NOW, OUTSIDER, RECIPIENTS, SENDER, seal

PACKET = seal(message=b"solicitud", attachments=[("acta.pdf", b"%PDF" * 50)],
              recipients=("r0", "r1"))
OPENED = open_envelope(PACKET.envelope, SENDER.public, "r0", RECIPIENTS["r0"],
                       io.BytesIO(PACKET.streams[0]))
RECEIPT = make_receipt(OPENED, "r0", RECIPIENTS["r0"], now=NOW)
SHARE = share_content_key(OPENED, RECIPIENTS["r0"], "r0", "outsider", OUTSIDER.public, now=NOW)


def flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def test_receipt_round_trip_binds_packet_digests_and_statement() -> None:
    receipt = verify_receipt(RECEIPT.receipt, RECEIPT.signature, RECIPIENTS["r0"].public)
    assert receipt.packet_id == OPENED.header.packet_id
    assert receipt.ciphertext_sha256 == tuple(s.sha256 for s in OPENED.header.streams)
    assert receipt.statement_sha256 == hashlib.sha256(OPENED.statement_bytes).hexdigest()
    assert receipt.received == "2025-03-14T15:09:26Z"
    assert type(receipt).from_bytes(receipt.to_bytes()) == receipt


@given(st.data())
def test_tampered_receipt_is_refused(data: st.DataObject) -> None:
    which = data.draw(st.sampled_from(["receipt", "signature"]))
    blob = getattr(RECEIPT, which)
    tampered = replace(RECEIPT, **{which: flip(blob, data.draw(st.integers(0, 8 * len(blob) - 1)))})
    with pytest.raises(BadSignature):
        verify_receipt(tampered.receipt, tampered.signature, RECIPIENTS["r0"].public)


def test_receipt_signed_by_another_liaison_is_refused() -> None:
    with pytest.raises(BadSignature):
        verify_receipt(RECEIPT.receipt, RECEIPT.signature, RECIPIENTS["r1"].public)


def test_a_receipt_signature_is_not_a_statement_signature() -> None:
    with pytest.raises(BadSignature):
        verify_signature(RECIPIENTS["r0"].public.signing, STATEMENT_TYPE, RECEIPT.receipt,
                         RECEIPT.signature)
    verify_signature(RECIPIENTS["r0"].public.signing, RECEIPT_TYPE, RECEIPT.receipt,
                     RECEIPT.signature)


def test_shared_key_opens_for_the_new_recipient_without_reencryption() -> None:
    share = verify_key_share(SHARE.share, SHARE.signature, RECIPIENTS["r0"].public)
    assert share.sharer.id == "r0"
    assert share.recipient.key_id == OUTSIDER.public.key_id
    opened = open_packet(PACKET, SENDER.public, "outsider", OUTSIDER, share=share)
    assert opened.attachments == {"acta.pdf": b"%PDF" * 50}


def test_share_is_bound_to_its_recipient() -> None:
    share = verify_key_share(SHARE.share, SHARE.signature, RECIPIENTS["r0"].public)
    with pytest.raises(NotARecipient):
        open_packet(PACKET, SENDER.public, "r1", RECIPIENTS["r1"], share=share)
    forged = replace(share, recipient=replace(share.recipient, id="r9"))
    with pytest.raises(BadWrappedKey):
        open_packet(PACKET, SENDER.public, "r9", OUTSIDER, share=forged)


def test_share_is_bound_to_its_packet() -> None:
    other = seal(recipients=("r0",), seed="another packet")
    share = verify_key_share(SHARE.share, SHARE.signature, RECIPIENTS["r0"].public)
    with pytest.raises(BadWrappedKey):
        open_packet(other, SENDER.public, "outsider", OUTSIDER, share=share)


def test_a_share_of_a_different_key_fails_the_key_commitment() -> None:
    # r0 shares the key of another packet while pretending it is this packet's.
    other = seal(recipients=("r0",), seed="another packet")
    other_opened = open_envelope(other.envelope, SENDER.public, "r0", RECIPIENTS["r0"],
                                 io.BytesIO(other.streams[0]))
    lying = replace(OPENED, content_key=other_opened.content_key)
    signed = share_content_key(lying, RECIPIENTS["r0"], "r0", "outsider", OUTSIDER.public)
    share = verify_key_share(signed.share, signed.signature, RECIPIENTS["r0"].public)
    with pytest.raises(BadWrappedKey):
        open_packet(PACKET, SENDER.public, "outsider", OUTSIDER, share=share)


@given(st.data())
def test_tampered_share_is_refused(data: st.DataObject) -> None:
    which = data.draw(st.sampled_from(["share", "signature"]))
    blob = getattr(SHARE, which)
    tampered = replace(SHARE, **{which: flip(blob, data.draw(st.integers(0, 8 * len(blob) - 1)))})
    with pytest.raises(BadSignature):
        verify_key_share(tampered.share, tampered.signature, RECIPIENTS["r0"].public)

"""The pure formats: the bundle's strict JSON and seal, and C2SP tlog-policy."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import SigningKey

from crypto import LiaisonKeys
from custody import (
    Bundle,
    Certificate,
    CertificateFormatError,
    CustodyStep,
    KeyRecord,
    LoggedEntry,
    Person,
    PolicyError,
    Signed,
    cosigners,
    make_policy,
    parse_bundle,
    parse_policy,
    seal_certificate,
    seal_key,
    verify_seal,
)
from ledger import (
    Checkpoint,
    CosignatureSigner,
    NoteSigner,
    NoteVerifier,
    SignatureError,
    sign_checkpoint,
)

SEAL = SigningKey(bytes(range(32)))
LOG = NoteSigner("example.org/log", SigningKey(bytes(range(1, 33))))
WITNESSES = [CosignatureSigner(f"w{i}.example", SigningKey(bytes([i]) * 32)) for i in range(4)]


def _certificate(**changes: Any) -> Certificate:
    keys = LiaisonKeys.from_secret_bytes(bytes(64)).public
    fields: dict[str, Any] = dict(
        id="01a20209-d555-74eb-b5fd-5a58ebaef7a2", packet_id="01a20209-d3bd-7773-8740-9c73f6e175f1",
        issued_to="Juzgado 3", purpose="trial", issued_at="2026-11-22T06:55:28.597202Z",
        issued_by="bob", header=Signed(b"{}", bytes(64)), keys=(KeyRecord("alice", keys, 3),),
        events=(LoggedEntry(b'{"index":4}', "c2sp.org/tlog-proof@v1\nindex 4\n\nnote\n"),),
        enrolments=(), receipts=(), shares=(), policy="quorum none\n",
        custody=(CustodyStep(4, "2026-11-22T06:55:28.597202Z", "submitted", "alice", "centre",
                             "channel ch", None),))
    fields.update(changes)
    return Certificate(**fields)


def _sealed() -> Bundle:
    return seal_certificate(_certificate(), SEAL, "example.org/log")


def test_bundle_round_trips_and_the_seal_verifies() -> None:
    bundle = _sealed()
    again = parse_bundle(bundle.to_bytes())
    assert again == bundle
    verify_seal(again, seal_key(bundle.seal.key))
    assert bundle.seal.key.startswith("example.org/log/certificates+")


def test_people_are_sealed_when_present_and_older_certificates_without_them_still_verify(
        ) -> None:
    with_people = seal_certificate(_certificate(people=(
        Person("alice", "Alice Álvarez", "CO", "prosecutor"),)), SEAL, "example.org/log")
    again = parse_bundle(with_people.to_bytes())
    assert again.certificate.people[0].name == "Alice Álvarez"
    verify_seal(again, seal_key(with_people.seal.key))
    assert b'"people"' not in _sealed().to_bytes()  # none: the member is absent
    obj = json.loads(with_people.to_bytes())
    obj["certificate"]["people"][0]["role"] = "coordinator"
    with pytest.raises(SignatureError):
        verify_seal(parse_bundle(json.dumps(obj).encode()), seal_key(with_people.seal.key))
    obj["certificate"]["people"] = []
    with pytest.raises(CertificateFormatError, match="people, when present"):
        parse_bundle(json.dumps(obj).encode())


def test_pretty_printed_bundle_parses_and_keeps_its_seal() -> None:
    pretty = json.dumps(json.loads(_sealed().to_bytes()), indent=2).encode()
    verify_seal(parse_bundle(pretty), seal_key(_sealed().seal.key))


def test_seal_by_another_key_or_over_other_content_fails() -> None:
    bundle = _sealed()
    other = NoteVerifier.from_string(NoteSigner("example.org/log/certificates",
                                                SigningKey.generate()).verifier_key())
    with pytest.raises(SignatureError, match="not by the trusted key"):
        verify_seal(bundle, other)
    changed = Bundle(_certificate(purpose="appeal"), bundle.seal)
    with pytest.raises(SignatureError):
        verify_seal(changed, seal_key(bundle.seal.key))


def _mutated(path: list[Any], value: Any, delete: bool = False) -> bytes:
    obj = json.loads(_sealed().to_bytes())
    target = obj
    for key in path[:-1]:
        target = target[key]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(obj).encode()


@pytest.mark.parametrize(("path", "value", "message"), [
    (["certificate", "extra"], 1, "unknown fields"),
    (["certificate", "v"], 2, "version"),
    (["type"], "application/json", "type is not"),
    (["certificate", "id"], "not-a-uuid", "id is not"),
    (["certificate", "issued_at"], "2026-11-22T06:55:28Z", "issued_at"),
    (["certificate", "issued_to"], "a\nb", "issued_to"),
    (["certificate", "keys", 0, "key_id"], "0" * 32, "key_id does not match"),
    (["certificate", "keys", 0, "enrolment"], -1, "enrolment"),
    (["certificate", "keys", 0, "enrolment"], True, "enrolment"),
    (["certificate", "header", "signature"], "AAAA", "signature"),
    (["certificate", "header", "signed"], "e30", "signed"),
    (["certificate", "events"], {}, "events is not a list"),
    (["seal", "signature"], 7, "signature"),
])
def test_strict_parse_refuses(path: list[Any], value: Any, message: str) -> None:
    with pytest.raises(CertificateFormatError, match=message):
        parse_bundle(_mutated(path, value))


def test_strict_parse_refuses_duplicates_floats_and_missing_fields() -> None:
    text = _sealed().to_bytes().decode()
    with pytest.raises(CertificateFormatError, match="duplicate key"):
        parse_bundle(text.replace('{"certificate":', '{"type":"x","certificate":', 1).encode())
    with pytest.raises(CertificateFormatError, match="non-integer"):
        parse_bundle(_mutated(["certificate", "v"], 1.0))
    with pytest.raises(CertificateFormatError, match="missing fields"):
        parse_bundle(_mutated(["certificate", "custody"], None, delete=True))
    with pytest.raises(CertificateFormatError, match="not a JSON document"):
        parse_bundle(b"\xff")


@given(st.binary(max_size=200))
def test_garbage_never_parses_into_a_bundle(data: bytes) -> None:
    with pytest.raises(CertificateFormatError):
        parse_bundle(data)


# -- C2SP tlog-policy -----------------------------------------------------------------


def _policy_text() -> str:
    w = [s.verifier_key() for s in WITNESSES]
    return (f"# the spec's two-level example\nlog {LOG.verifier_key()}\n\n"
            f"witness X1 {w[0]}\nwitness X2 {w[1]}\n\twitness Y1 {w[2]}  \n"
            f"witness Y2 {w[3]} https://y2.example/\n"
            "group X-witnesses 2 X1 X2\ngroup Y-witnesses any Y1 Y2\n"
            "group X-and-Y all X-witnesses Y-witnesses\nquorum X-and-Y\n")


def test_policy_groups_and_quorum_follow_the_spec() -> None:
    policy = parse_policy(_policy_text())
    assert policy.holds({"X1", "X2", "Y2"})
    assert not policy.holds({"X1", "Y1", "Y2"})
    assert not policy.holds({"X1", "X2"})
    assert parse_policy(policy.text()).text() == policy.text()
    assert policy.log_for("example.org/log") is not None
    assert parse_policy("quorum none\n").holds(set())


@pytest.mark.parametrize(("text", "message"), [
    ("", "needs a quorum"),
    ("quorum none\nquorum none\n", "exactly one quorum"),
    ("quorum w\n", "not defined above"),
    ("group g any w\nquorum g\n", "not defined above"),
    ("frobnicate\nquorum none\n", "unknown or malformed"),
    ("quorum none\x0b\n", "control character"),
    (f"log {WITNESSES[0].verifier_key()}\nquorum none\n", "signature type"),
    (f"witness a {LOG.verifier_key()}\nquorum none\n", "signature type"),
    (f"witness a {WITNESSES[0].verifier_key()}\nwitness b {WITNESSES[0].verifier_key()}\n"
     "quorum none\n", "listed twice"),
    (f"witness a {WITNESSES[0].verifier_key()}\ngroup g 2 a\nquorum g\n", "threshold"),
    (f"witness a {WITNESSES[0].verifier_key()}\ngroup g any a a\nquorum g\n", "member twice"),
    (f"witness none {WITNESSES[0].verifier_key()}\nquorum none\n", "reserved"),
    (f"witness a {WITNESSES[0].verifier_key()}\ngroup g 1 none\nquorum g\n", "not defined"),
])
def test_malformed_policies_are_refused(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_policy(text)


def test_cosignatures_count_only_valid_lines_by_listed_witnesses() -> None:
    log = NoteVerifier.from_string(LOG.verifier_key())
    keys = {f"w{i}": NoteVerifier.from_string(s.verifier_key()) for i, s in enumerate(WITNESSES)}
    policy = make_policy(log, keys, 2)
    checkpoint = Checkpoint("example.org/log", 10, bytes(32))
    note = sign_checkpoint(checkpoint, LOG)
    stranger = CosignatureSigner("stranger.example", SigningKey.generate())
    note += WITNESSES[0].cosign(checkpoint, 5) + stranger.cosign(checkpoint, 5)
    assert cosigners(policy, checkpoint, note) == ["w0"]
    assert not policy.holds(cosigners(policy, checkpoint, note))
    note += WITNESSES[3].cosign(checkpoint, 6)
    assert policy.holds(cosigners(policy, checkpoint, note))
    forged = note.replace(WITNESSES[3].cosign(checkpoint, 6),
                          WITNESSES[3].cosign(Checkpoint("example.org/log", 11, bytes(32)), 6))
    with pytest.raises(SignatureError, match="w3"):
        cosigners(policy, checkpoint, forged)


def test_make_policy_states_none_one_or_a_group() -> None:
    log = NoteVerifier.from_string(LOG.verifier_key())
    one = {"w0": NoteVerifier.from_string(WITNESSES[0].verifier_key())}
    assert make_policy(log, {}, 0).text().endswith("quorum none\n")
    assert make_policy(log, one, 1).text().endswith("quorum w0\n")
    with pytest.raises(PolicyError, match="at least that many"):
        make_policy(log, one, 2)

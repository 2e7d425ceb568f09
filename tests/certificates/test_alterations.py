"""Every single alteration of a certificate is rejected, and for the right reason.

One certificate (with a disclosed statement and a refresh) is issued per test
function; hypothesis then alters its JSON one way at a time and checks the
report: the bundle never verifies, the check that names the alteration fails,
and any alteration of the sealed part also breaks the seal.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from client.certificate.refresh import certificate_size, disclose_statement, refresh_bundle
from client.certificate.verify import Report, Trust, check_certificate
from custody import parse_bundle, seal_certificate
from tests.app.conftest import World, sign_checkpoint_now
from tests.certificates.helpers import history

Json = dict[str, Any]
FIXTURE_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture],
                      max_examples=60, deadline=None)


@pytest.fixture
def issued(world: World) -> tuple[Json, Trust]:
    """A verified certificate of a ten-entry history, disclosed by bob and refreshed."""
    h = history(world)
    bundle = parse_bundle(h.certificate())
    statement, signature = h.statement()
    bundle = disclose_statement(bundle, statement, signature, "bob")
    assert world.client.get(f"/v1/packets/{h.packet_id}", headers=h.ex.bob.auth).is_success
    sign_checkpoint_now(world)
    size = certificate_size(bundle)
    fresh = world.client.get(f"/v1/certificates/{bundle.certificate.id}/refresh",
                             params={"from": size}, headers=h.ex.bob.auth)
    assert fresh.status_code == 200, fresh.text
    bundle = refresh_bundle(bundle, fresh.json()["checkpoint"],
                            [bytes.fromhex(x) for x in fresh.json()["consistency"]])
    trust = Trust(seal_key=h.seal_key())
    assert check_certificate(bundle.to_bytes(), trust).ok
    return json.loads(bundle.to_bytes()), trust


def _report(obj: Json, trust: Trust) -> Report:
    return check_certificate(json.dumps(obj).encode(), trust)


def _failed(obj: Json, trust: Trust) -> set[str]:
    report = _report(obj, trust)
    assert not report.ok
    return {c.name for c in report.failures()}


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _leaves(item, (*path, i))
    else:
        yield path, value


def _set(obj: Json, path: tuple[Any, ...], value: Any) -> Json:
    out = copy.deepcopy(obj)
    target: Any = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return out


def _flip_b64(text: str, byte: int, bit: int) -> str:
    data = bytearray(base64.b64decode(text))
    data[byte % len(data)] ^= 1 << bit
    return base64.b64encode(bytes(data)).decode()


@FIXTURE_OK
@given(data=st.data())
def test_any_changed_leaf_is_rejected(issued: tuple[Json, Trust], data: st.DataObject) -> None:
    obj, trust = issued
    paths = [(p, v) for p, v in _leaves(obj) if p != ("type",)]
    path, value = data.draw(st.sampled_from(paths))
    if isinstance(value, bool) or value is None:
        new: Any = "x"
    elif isinstance(value, int):
        new = data.draw(st.integers(0, 2**40).filter(lambda n: n != value))
    else:
        new = data.draw(st.text(min_size=1, max_size=40).filter(lambda t: t != value)
                        | st.just(value + " ") | st.just(value[:-1]))
    altered = _set(obj, path, new)
    failed = _failed(altered, trust)
    if path[0] == "certificate":
        assert "seal" in failed or "certificate format" in failed, (path, failed)


def _mutators(obj: Json) -> list[tuple[str, Callable[[Any], Json], st.SearchStrategy[Any]]]:
    cert = obj["certificate"]
    n_events, n_proofs = len(cert["events"]), len(cert["events"]) + len(cert["enrolments"])

    def drop_event(i: int) -> Json:
        out = copy.deepcopy(obj)
        del out["certificate"]["events"][i]
        return out

    def swap_events(i: int) -> Json:
        out = copy.deepcopy(obj)
        events = out["certificate"]["events"]
        events[i], events[i + 1] = events[i + 1], events[i]
        return out

    def proof_node(args: tuple[int, int, int]) -> Json:
        out = copy.deepcopy(obj)
        which, line, bit = args
        items = out["certificate"]["events"] + out["certificate"]["enrolments"]
        head, sep, note = items[which % n_proofs]["proof"].partition("\n\n")
        lines = head.split("\n")
        k = 2 + line % (len(lines) - 2)
        lines[k] = _flip_b64(lines[k], bit // 8, bit % 8)
        items[which % n_proofs]["proof"] = "\n".join(lines) + sep + note
        return out

    def checkpoint(args: tuple[int, int]) -> Json:
        out = copy.deepcopy(obj)
        byte, bit = args
        for item in out["certificate"]["events"] + out["certificate"]["enrolments"]:
            head, _, note = item["proof"].partition("\n\n")
            origin, size, root, rest = note.split("\n", 3)
            item["proof"] = f"{head}\n\n{origin}\n{size}\n{_flip_b64(root, byte, bit)}\n{rest}"
        return out

    return [
        ("seal", drop_event, st.integers(1, n_events - 2)),
        ("ledger entries", swap_events, st.integers(0, n_events - 2)),
        ("inclusion proofs", proof_node,
         st.tuples(st.integers(0, 50), st.integers(0, 50), st.integers(0, 255))),
        ("checkpoint signature", checkpoint, st.tuples(st.integers(0, 31), st.integers(0, 7))),
    ]


@FIXTURE_OK
@given(data=st.data())
def test_structural_alterations_fail_for_their_reason(issued: tuple[Json, Trust],
                                                      data: st.DataObject) -> None:
    obj, trust = issued
    reason, mutate, args = data.draw(st.sampled_from(_mutators(obj)))
    failed = _failed(mutate(data.draw(args)), trust)
    assert reason in failed, failed
    assert "seal" in failed, failed


SIGNATURES = [
    (("certificate", "header", "signature"), "packet header"),
    (("certificate", "receipts", 0, "signature"), "receipts"),
    (("certificate", "shares", 0, "signature"), "key shares"),
    (("seal", "signature"), "seal"),
    (("disclosure", "signature"), "disclosed statement"),
    (("refresh", "consistency", 0), "refresh"),
]


@FIXTURE_OK
@given(which=st.sampled_from(SIGNATURES), byte=st.integers(0, 63), bit=st.integers(0, 7))
def test_a_flipped_signature_bit_fails_its_check(issued: tuple[Json, Trust],
                                                 which: tuple[tuple[Any, ...], str],
                                                 byte: int, bit: int) -> None:
    obj, trust = issued
    path, reason = which
    target: Any = obj
    for key in path:
        target = target[key]
    assert reason in _failed(_set(obj, path, _flip_b64(target, byte, bit)), trust)


def test_each_named_field_change_fails_its_check(issued: tuple[Json, Trust]) -> None:
    obj, trust = issued
    cases: list[tuple[tuple[Any, ...], Any, str]] = [
        (("certificate", "issued_to"), "Another court", "certificate issue"),
        (("certificate", "purpose"), "another purpose", "certificate issue"),
        (("certificate", "issued_by"), "carol", "certificate issue"),
        (("certificate", "custody", 1, "received_by"), "mallory", "custody narrative"),
        (("certificate", "keys", 0, "enrolment"), 0, "key enrolments"),
        (("certificate", "policy"), "quorum nobody\n", "checkpoint signature"),
        (("disclosure", "disclosed_by"), "carol", "disclosed statement"),
    ]
    for path, value, reason in cases:
        assert reason in _failed(_set(obj, path, value), trust), path


def test_dropped_refresh_and_disclosure_leave_a_valid_certificate(
        issued: tuple[Json, Trust]) -> None:
    obj, trust = issued
    for part in ("refresh", "disclosure"):
        smaller = copy.deepcopy(obj)
        del smaller[part]
        assert _report(smaller, trust).ok


def test_resealed_by_another_key_is_rejected_under_the_pinned_key(
        issued: tuple[Json, Trust]) -> None:
    obj, trust = issued
    bundle = parse_bundle(json.dumps(obj).encode())
    forged = seal_certificate(bundle.certificate, SigningKey.generate(), "test.cadena/ledger")
    report = check_certificate(forged.to_bytes(), trust)
    assert [c.name for c in report.failures()] == ["seal"]
    unpinned = check_certificate(forged.to_bytes(), Trust())
    assert unpinned.ok
    assert any("taken from the certificate itself" in n for n in unpinned.notes)

"""Which witness URLs a coordinator may register (the service POSTs checkpoints to them).

A witness's submission prefix is ``https``; plain ``http`` only to a loopback
host (127.0.0.0/8, ``::1``, ``localhost``: tests and a witness beside the
service). No other scheme, no user name or password, no query, no fragment.
A refused URL is a 422 problem and registers nothing.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from app.witnesses.schemas import WitnessCreate
from tests.app.conftest import World
from tests.app.test_packets_support import assert_problem, ledger_size
from tests.witness.test_service import WITNESS_KEY, listed, register

ACCEPTED = [
    "https://witness.example.org",
    "https://witness.example.org:8443/tlog/",
    "https://[2001:db8::1]/witness",
    "https://203.0.113.7/w",
    "http://127.0.0.1:9/prefix",
    "http://127.42.0.1",
    "http://localhost:8080",
    "http://LOCALHOST/w",
    "http://[::1]:9",
]
REFUSED = [
    "http://witness.example.org",          # plain http off the machine
    "http://10.0.0.5:9",
    "http://169.254.169.254/latest",       # cloud metadata
    "http://[::ffff:127.0.0.1]/",          # loopback only as ::1
    "http://localhost.example.org",
    "http://127.0.0.1.nip.io",
    "http://2130706433/",                  # 127.0.0.1 written as one number
    "ftp://witness.example.org",
    "file:///etc/passwd",
    "gopher://127.0.0.1:70",
    "https://user:secret@witness.example.org",
    "https://user@witness.example.org",
    "https://witness.example.org/#frag",
    "https://witness.example.org/#",
    "https://witness.example.org/?a=b",
    "https://",
    "https:///path",
    "https://witness.example.org:99999",
    "https://witness.example.org:0",
    "https://witness.example.org:port",
    "https:witness.example.org",
    "https://witness .example.org",
]


def _create(url: str) -> WitnessCreate:
    return WitnessCreate(name="w", url=url, verifier_key=WITNESS_KEY)


@pytest.mark.parametrize("url", ACCEPTED)
def test_https_and_loopback_http_witness_urls_are_accepted(url: str) -> None:
    assert _create(url).url == url


@pytest.mark.parametrize("url", REFUSED)
def test_other_witness_urls_are_refused(url: str) -> None:
    with pytest.raises(ValidationError):
        _create(url)


@given(st.ip_addresses(v=4))
def test_plain_http_is_accepted_exactly_for_loopback_addresses(
        address: ipaddress.IPv4Address) -> None:
    url = f"http://{address}:9/w"
    if address in ipaddress.IPv4Network("127.0.0.0/8"):
        assert _create(url).url == url
    else:
        with pytest.raises(ValidationError):
            _create(url)


@given(st.ip_addresses(v=4))
def test_https_is_accepted_for_any_address(address: ipaddress.IPv4Address) -> None:
    assert _create(f"https://{address}/w").url == f"https://{address}/w"


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest",
                                 "https://user:pw@witness.example.org"])
def test_a_refused_witness_url_is_422_and_registers_nothing(world: World, url: str) -> None:
    before = ledger_size(world)
    body = assert_problem(register(world, "w", url), 422, "invalid-request")
    assert any("url" in error["loc"] for error in body["errors"])
    assert ledger_size(world) == before
    assert listed(world) == {}

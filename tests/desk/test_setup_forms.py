"""The first run's forms over HTTP: trust roots with witnesses, bad input, nothing half-saved."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from nacl.signing import SigningKey

from client.desk.server import RunningDesk
from client.profile import Profile, ProfileConfig
from client.trust import key_fingerprint, load_trust
from crypto import LiaisonKeys, save_keys
from ledger import CosignatureSigner
from tests.desk.harness import hidden_fields, open_desk

LEDGER = "localhost.cadena.example/ledger+7d5eefd2+AcisuplaCzLDYEyNs02iqP7lZ7tGgYfO8XcynuMhkfYl"


def _witness(name: str, seed: int) -> str:
    return CosignatureSigner(name, SigningKey(bytes([seed]) * 32)).verifier_key()


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[RunningDesk]:
    """A desk for a profile that has keys and a server, but no trust roots yet."""
    profile = Profile("half", tmp_path / "home")
    profile.save_key_file(save_keys(LiaisonKeys.generate(), None, allow_plaintext=True))
    profile.save_config(ProfileConfig("https://cadena.example", "ana"))
    with open_desk(profile) as running:
        yield running


@pytest.fixture
def client(desk: RunningDesk) -> Iterator[tuple[httpx.Client, str]]:
    """A launched HTTP client and its CSRF token."""
    with httpx.Client(base_url=desk.url, headers={"Accept": "text/html"}) as launched:
        launched.get(desk.desk.launch_url().removeprefix(desk.url))
        page = launched.get("/setup/trust")
        token = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
        assert token is not None
        yield launched, token.group(1)


def test_witness_keys_and_quorum_are_shown_with_fingerprints_before_they_are_kept(
        desk: RunningDesk, client: tuple[httpx.Client, str]) -> None:
    http, token = client
    witnesses = [_witness("witness.co.example/w1", 1), _witness("witness.mx.example/w2", 2)]
    form = {"csrf_token": token, "ledger_key": LEDGER, "witnesses": "\n".join(witnesses),
            "quorum": "1"}
    shown = http.post("/setup/trust", data=form)
    assert shown.status_code == 200
    for key in [LEDGER, *witnesses]:
        assert key_fingerprint(key) in shown.text
    assert "1 of 2 witnesses must confirm each checkpoint." in shown.text
    assert "Quorum 0" not in shown.text
    assert load_trust(desk.desk.profile) is None  # nothing kept before the confirmation
    unticked = http.post("/setup/trust", data={**form, "confirm_step": "yes"})
    assert unticked.status_code == 400
    assert load_trust(desk.desk.profile) is None
    kept = http.post("/setup/trust", data={**form, "confirm_step": "yes", "confirmed": "yes"})
    assert kept.status_code == 303
    roots = load_trust(desk.desk.profile)
    assert roots is not None
    assert roots.quorum == 1
    assert [str(w) for w in roots.witnesses] == witnesses
    assert desk.desk.profile.config().ledger_key == LEDGER


@pytest.mark.parametrize(("ledger", "witnesses", "quorum"), [
    ("not a key", "", "0"),
    (LEDGER, "", "1"),                                       # more than the witnesses
    (LEDGER, LEDGER, "1"),                                   # a ledger key as a witness's
    (LEDGER, _witness("w.example/a", 3), "one"),             # not a number
    (_witness("w.example/a", 3), "", "0"),                   # a witness's key as the ledger's
])
def test_bad_trust_roots_are_refused_and_nothing_is_kept(
        desk: RunningDesk, client: tuple[httpx.Client, str], ledger: str, witnesses: str,
        quorum: str) -> None:
    http, token = client
    answer = http.post("/setup/trust", data={"csrf_token": token, "ledger_key": ledger,
                                             "witnesses": witnesses, "quorum": quorum,
                                             "confirm_step": "yes", "confirmed": "yes"})
    assert answer.status_code == 400
    assert "There is a problem" in answer.text
    assert load_trust(desk.desk.profile) is None


def test_a_short_passphrase_or_a_bad_server_address_is_refused(tmp_path: Path) -> None:
    with open_desk(Profile("new", tmp_path / "home")) as desk, \
            httpx.Client(base_url=desk.url, headers={"Accept": "text/html"}) as http:
        http.get(desk.desk.launch_url().removeprefix(desk.url))
        token = re.search(r'name="csrf-token" content="([^"]+)"', http.get("/court/").text)
        assert token is not None
        keys_form = hidden_fields(http.get("/setup/keys").text, "/setup/keys")
        short = http.post("/setup/keys", data={**keys_form,
                                               "passphrase": "short", "confirm": "short"})
        assert short.status_code == 400
        assert not desk.desk.profile.has_keys()
        made = http.post("/setup/keys", data={**keys_form,
                                              "passphrase": "long enough phrase",
                                              "confirm": "long enough phrase"})
        assert made.status_code == 303
        assert desk.desk.profile.is_encrypted()
        for server in ["cadena.example", "file:///etc/passwd", "javascript:alert(1)"]:
            bad = http.post("/setup/server", data={"csrf_token": token.group(1),
                                                   "server": server, "liaison": "ana"})
            assert bad.status_code == 400
        assert desk.desk.profile.config().server is None


def test_a_program_without_the_cookie_gets_an_rfc_9457_problem(desk: RunningDesk) -> None:
    with httpx.Client() as program:
        answer = program.get(desk.url + "/setup/trust")
    assert answer.status_code == 403
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["status"] == 403
    assert answer.json()["title"] == "Open the desk from its link"



def test_keys_of_a_set_up_left_half_way_leave_memory_after_the_idle_time(
        tmp_path: Path) -> None:
    from client.desk.app import DeskOptions
    from client.desk.server import running_desk
    from client.local_server import free_port

    now = [50.0]
    options = DeskOptions(Profile("left", tmp_path / "home"), free_port(), idle=60,
                          kdf="interactive", monotonic=lambda: now[0])
    with running_desk(options) as desk, \
            httpx.Client(base_url=desk.url, headers={"Accept": "text/html"}) as http:
        http.get(desk.desk.launch_url().removeprefix(desk.url))
        token = re.search(r'name="csrf-token" content="([^"]+)"', http.get("/court/").text)
        assert token is not None
        keys_form = hidden_fields(http.get("/setup/keys").text, "/setup/keys")
        made = http.post("/setup/keys", data={**keys_form,
                                              "passphrase": "long enough phrase",
                                              "confirm": "long enough phrase"})
        assert made.status_code == 303
        now[0] += 59
        desk.desk.expire()
        assert desk.desk.take_new_keys() is not None  # still held within the idle time
        desk.desk.hold_new_keys(desk.desk.profile.load_keys(lambda: "long enough phrase"))
        now[0] += 61
        desk.desk.expire()  # what the watcher does
        assert desk.desk.take_new_keys() is None


def test_keys_taken_by_the_set_up_while_the_watcher_checks_their_age_keep_the_watcher_alive(
        tmp_path: Path) -> None:
    """The set-up's last step takes the new keys on a request's thread; the idle watcher checks
    their age on its own.

    The watcher read the held keys twice (are there any, then how old are they): keys taken
    in between made it raise, and the watcher's thread died with it, so nothing locked the
    desk on time any more. The clock, read between the two, stands in for the set-up here.
    """
    from client.desk.app import Desk, DeskOptions
    from client.local_server import free_port

    profile = Profile("racing", tmp_path / "home")
    keys = LiaisonKeys.generate()
    taken: list[LiaisonKeys | None] = []
    armed = [False]

    def clock() -> float:
        if armed[0]:
            armed[0] = False
            taken.append(the_desk.take_new_keys())  # the set-up ends on another thread
        return 1000.0

    the_desk = Desk(DeskOptions(profile, free_port(), idle=60, monotonic=clock))
    the_desk.hold_new_keys(keys)
    armed[0] = True
    the_desk.expire()  # what the watcher does every few seconds
    assert taken == [keys]
    assert the_desk.take_new_keys() is None

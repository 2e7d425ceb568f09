"""Contacts' keys pinned in the profile: used only once the witnessed ledger proves them."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client.contacts import ContactBook, KeyChanged
from client.errors import UsageError
from client.profile import Profile
from crypto import LiaisonKeys, save_keys
from tests.app.test_packets_support import Exchange
from tests.client.conftest import Cli, sdk_for, sign_checkpoint


def _send(cli: Cli, tmp_path: Path, sender: str = "alice", code: int = 0) -> str:
    result = cli.run("send", "--profile", sender, "--to", "bob", "--channel", "ch", "--text",
                     "records", "--evaluation", "B2", "--json", code=code)
    return result.stderr if code else result.stdout


def _actions(ex: Exchange, action: str) -> int:
    return sum(1 for e in ex.world.entries() if e.action == action)


def test_first_contact_key_is_pinned_and_announced(cli: Cli, ex: Exchange,
                                                   tmp_path: Path) -> None:
    first = cli.run("send", "--profile", "alice", "--to", "bob", "--channel", "ch", "--text",
                    "x", "--evaluation", "A1")
    assert "pinned the key of bob, proven in the ledger" in first.stderr
    assert ex.bob.keys.public.fingerprint in " ".join(first.stderr.split())
    pins = cli.json("contacts", "list", "--profile", "alice")
    assert [(k["key_id"], k["how"]) for k in pins["bob"]] == [
        (ex.bob.keys.public.key_id, "first use")]
    again = cli.run("send", "--profile", "alice", "--to", "bob", "--channel", "ch", "--text",
                    "y", "--evaluation", "A1")
    assert "pinned" not in again.stderr


def test_a_profile_without_trust_roots_uses_no_contacts_key(
        cli: Cli, ex: Exchange, tmp_path: Path) -> None:
    cli.profile_for("alice-untrusting", ex.alice, trust=False)
    submitted = _actions(ex, "packet.submit")
    refused = _send(cli, tmp_path, sender="alice-untrusting", code=2)
    assert "has no trust roots" in refused
    assert "cadena trust set --profile alice-untrusting" in refused
    assert _actions(ex, "packet.submit") == submitted
    assert cli.json("contacts", "list", "--profile", "alice-untrusting") == {}


def test_a_rotated_recipient_key_is_used_once_the_ledger_proves_it(
        cli: Cli, ex: Exchange, tmp_path: Path) -> None:
    _send(cli, tmp_path)
    new = LiaisonKeys.generate()
    sdk_for(ex.world, ex.bob).liaisons.rotate(new)
    submitted, uploads = _actions(ex, "packet.submit"), _actions(ex, "blob.upload")
    assert submitted > 0  # a short text goes inline: no upload (``uploads`` is 0)
    refused = _send(cli, tmp_path, code=1)  # no signed checkpoint has the rotation yet
    assert "not-in-ledger" in refused
    assert (_actions(ex, "packet.submit"), _actions(ex, "blob.upload")) == (submitted, uploads)
    wrong = ex.bob.keys.public.fingerprint
    cli.run("contacts", "verify", "bob", "--fingerprint", wrong, "--profile", "alice", code=2)
    sign_checkpoint(ex.world)
    _send(cli, tmp_path)
    pins = cli.json("contacts", "list", "--profile", "alice")["bob"]
    assert [(k["key_id"], k["how"]) for k in pins] == [
        (ex.bob.keys.public.key_id, "first use"), (new.public.key_id, "rotation")]


def test_fetch_refuses_a_sender_key_the_ledger_does_not_prove(cli: Cli, ex: Exchange,
                                                             tmp_path: Path) -> None:
    first = str(cli.json("send", "--profile", "alice", "--to", "bob", "--channel", "ch",
                         "--text", "one", "--evaluation", "A1")["id"])
    cli.run("fetch", first, "--profile", "bob", "--out", str(tmp_path / "one"))
    new = LiaisonKeys.generate()
    sdk_for(ex.world, ex.alice).liaisons.rotate(new)
    Profile("alice2", cli.home).save_key_file(save_keys(new, None, allow_plaintext=True))
    cli.run("profile", "set", "--profile", "alice2", "--server", "http://testserver",
            "--liaison", "alice")
    cli.trust("alice2")
    second = str(cli.json("send", "--profile", "alice2", "--to", "bob", "--channel", "ch",
                          "--text", "two", "--evaluation", "A1")["id"])
    receipts = _actions(ex, "packet.receipt")
    refused = cli.run("fetch", second, "--profile", "bob", "--out", str(tmp_path / "two"),
                      code=1)
    assert "not-in-ledger" in refused.stderr
    assert not (tmp_path / "two" / "message.txt").exists()
    assert _actions(ex, "packet.receipt") == receipts
    # the first packet, signed with the key the ledger proved, still verifies
    cli.run("fetch", first, "--profile", "bob", "--out", str(tmp_path / "again"))
    sign_checkpoint(ex.world)  # the rotation, signed by alice's pinned key, is now proven
    cli.run("fetch", second, "--profile", "bob", "--out", str(tmp_path / "two"))
    assert (tmp_path / "two" / "message.txt").read_text() == "two"


KEYS = [LiaisonKeys.generate().public for _ in range(3)]


@given(st.lists(st.tuples(st.sampled_from(["bob", "carol"]), st.integers(0, 2), st.booleans()),
                max_size=12))
def test_a_key_is_usable_iff_first_seen_or_accepted(
        tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, int, bool]]) -> None:
    book = ContactBook(Profile("p", tmp_path_factory.mktemp("home")), me="alice")
    model: dict[str, set[int]] = {}
    for contact, n, accept in steps:
        if accept:
            book.accept(contact, KEYS[n], KEYS[n].fingerprint)
            model.setdefault(contact, set()).add(n)
            continue
        known = model.get(contact)
        if known is None or n in known:
            book.check(contact, KEYS[n])
            model.setdefault(contact, set()).add(n)
        else:
            with pytest.raises(KeyChanged):
                book.check(contact, KEYS[n])
    assert {c: {k.key_id for k in keys} for c, keys in book.pins().items()} == {
        c: {KEYS[n].key_id for n in ns} for c, ns in model.items()}
    book.check("alice", KEYS[0])  # one's own keys are not pinned
    assert "alice" not in book.pins()


def test_accepting_with_a_wrong_fingerprint_pins_nothing(tmp_path: Path) -> None:
    book = ContactBook(Profile("p", tmp_path))
    with pytest.raises(UsageError, match="nothing pinned"):
        book.accept("bob", KEYS[0], KEYS[1].fingerprint)
    assert book.pins() == {}

"""Every message the certificate verifier can produce reads in each of the desk's languages.

The ids are enumerated from the verifier's source (``client/certificate``):
every call of :func:`~client.certificate.messages.M`, whose first argument
must be a literal, so an id added there without its translations fails here
(and in ``test_catalogs``, once the court page marks it).
"""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import client.certificate
from client.certificate.messages import M, Message, Time
from client.desk import i18n
from client.desk.catalogs import read
from client.desk.sections.court import DESK_WORDING, VERIFIER_MESSAGES, render_message

VERIFIER = Path(client.certificate.__file__).parent
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _calls(name: str) -> list[tuple[Path, ast.Call]]:
    found = []
    for path in sorted(VERIFIER.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and node.func.id == name:
                found.append((path, node))
    return found


def verifier_message_ids() -> set[str]:
    """Every message id in the verifier's source (each ``M("...", ...)``)."""
    ids = set()
    for path, call in _calls("M"):
        first = call.args[0] if call.args else None
        where = f"{path.name}:{call.lineno}: M() needs a literal message id"
        assert isinstance(first, ast.Constant), where
        assert isinstance(first.value, str), where
        ids.add(first.value)
    return ids


IDS = sorted(verifier_message_ids())


def test_the_enumeration_finds_the_verifiers_messages() -> None:
    assert "%(digest)s  matches no digest the sender signed" in IDS  # objects.py
    assert "entry %(index)s: a second submission" in IDS             # chain.py
    assert "no listed witness" in IDS                                # proofs.py
    assert "not checked: %(reason)s" in IDS                          # verify.py
    assert len(IDS) > 80
    # Messages are made only through M (so nothing escapes the enumeration), but in M itself.
    assert [(p.name, c.lineno) for p, c in _calls("Message") if p.name != "messages.py"] == []


def test_the_court_page_marks_every_message_for_the_catalogs() -> None:
    assert set(VERIFIER_MESSAGES) == set(IDS)


@pytest.mark.parametrize("language", sorted(i18n.LANGUAGES))
def test_every_verifier_message_is_translated(language: str) -> None:
    catalog = read(language)
    missing = []
    for message_id in IDS:
        found = catalog.get(message_id)
        if found is None or not found.string or found.fuzzy:
            missing.append(message_id)
            continue
        assert set(_PLACEHOLDER.findall(str(found.string))) == set(
            _PLACEHOLDER.findall(message_id)), (language, message_id)
    assert not missing, f"{language} lacks {len(missing)}: {missing[:5]}"


@pytest.mark.parametrize("language", ["es", "pt", "fr"])
def test_the_words_are_translated_and_the_facts_kept(language: str) -> None:
    i18n.set_language(language)
    worded = [m for m in IDS if _PLACEHOLDER.sub("", m).strip(" :;,.()…-") != ""]
    same = [m for m in worded if i18n._(m) == m]
    assert not same, same  # a sentence left in English
    for message_id in IDS:
        params = {name: f"<{name}:{language}>" for name in _PLACEHOLDER.findall(message_id)}
        shown = render_message(M(message_id, **params))
        for value in params.values():
            assert value in shown, (message_id, shown)


@given(count=st.integers(min_value=0, max_value=10**9), packet=st.uuids().map(str),
       reason=st.text(max_size=40))
def test_english_on_the_page_is_what_the_cli_prints(count: int, packet: str,
                                                   reason: str) -> None:
    message = M("%(entries)s entries about packet %(packet)s, %(enrolments)s enrolments",
                entries=count, packet=packet, enrolments=2)
    nested = M("not checked: %(reason)s", reason=M("%(reason)s", reason=reason))
    i18n.set_language("en")
    assert render_message(message) == str(message).replace(
        str(count), i18n.format_number(count), 1)
    assert render_message(nested) == str(nested) == f"not checked: {reason}"


def test_counts_follow_the_readers_locale_and_lists_are_translated_item_by_item() -> None:
    keys = M("%(keys)s", keys=(
        M("%(liaison)s (key %(key)s…, enrolled at entry %(index)s)", liaison="ana",
          key="0a1b2c3d", index=1234),
        M("%(liaison)s (key %(key)s…, enrolled at entry %(index)s)", liaison="bruno",
          key="4e5f6a7b", index=7)))
    assert str(keys) == ("ana (key 0a1b2c3d…, enrolled at entry 1234), "
                         "bruno (key 4e5f6a7b…, enrolled at entry 7)")
    i18n.set_language("es")
    assert render_message(keys) == ("ana (clave 0a1b2c3d…, registrada en la entrada 1.234), "
                                    "bruno (clave 4e5f6a7b…, registrada en la entrada 7)")
    assert keys.as_json() == {"id": "%(keys)s", "params": {"keys": [
        {"id": "%(liaison)s (key %(key)s…, enrolled at entry %(index)s)",
         "params": {"liaison": "ana", "key": "0a1b2c3d", "index": 1234}},
        {"id": "%(liaison)s (key %(key)s…, enrolled at entry %(index)s)",
         "params": {"liaison": "bruno", "key": "4e5f6a7b", "index": 7}}]}}


def test_a_message_is_a_value() -> None:
    assert M("no refresh") == Message("no refresh", {})
    assert str(M("sealed by %(key)s", key="centre+1234")) == "sealed by centre+1234"


def test_times_are_written_in_the_readers_locale_and_as_written_for_the_cli() -> None:
    issued = M("entry %(index)s: issued by %(issuer)s at %(issued)s", index=33, issuer="bruno",
               issued=Time("2026-12-07T00:20:26.267425Z"))
    assert str(issued) == "entry 33: issued by bruno at 2026-12-07T00:20:26.267425Z"
    assert issued.as_json()["params"]["issued"] == "2026-12-07T00:20:26.267425Z"
    i18n.set_language("es")
    moment = i18n.format_datetime(datetime(2026, 12, 7, 0, 20, 26, 267425, tzinfo=UTC))
    assert render_message(issued) == f"entrada 33: emitido a solicitud de bruno el {moment}"
    assert "2026-12-07T" not in render_message(issued)
    bad = M("issued at %(issued)s, but the entry is dated %(dated)s",
            issued=Time("not a time"), dated=Time("2026-12-07T00:20:26Z"))
    assert render_message(bad).startswith("emitido el not a time, pero")  # shown as written


@given(who=st.text(max_size=60), language=st.sampled_from(sorted(i18n.LANGUAGES)))
def test_a_hostile_name_in_a_certificate_is_shown_as_written(who: str, language: str) -> None:
    # Names come from the certificate (anyone can write one): a "%(index)s" or markup in a
    # name is not formatted again, and the page escapes it (Jinja autoescape).
    i18n.set_language(language)
    shown = render_message(M("entry %(index)s: %(action)s by %(who)s, who holds no key",
                             index=3, action="packet.share", who=who))
    assert who in shown
    assert "packet.share" in shown


@pytest.mark.parametrize("language", ["en", "es", "pt", "fr"])
def test_no_note_on_the_court_page_names_a_command_line_flag(language: str) -> None:
    """The verifier's notes tell a CLI user to give --trusted-key or --policy; a judge in a
    browser is told the page's own field instead (and in every language)."""
    i18n.set_language(language)
    fields = {"en": ("The centre's seal key", "The court's policy")}
    for message_id in IDS:
        params = {name: "x" for name in _PLACEHOLDER.findall(message_id)}
        shown = render_message(M(message_id, **params))
        assert "--" not in shown, (message_id, shown)
    if language in fields:
        for field, message_id in zip(fields[language], DESK_WORDING, strict=True):
            assert field in render_message(M(message_id, key="k"))

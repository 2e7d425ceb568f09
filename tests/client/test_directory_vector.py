"""The key-directory vector (tests/vectors/directory): accepted as documented, refusals named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from client.keychain import KeyNotProven
from client.models import DirectoryPage, parse
from client.transparency import DirectoryAPI, KeyTransparency, MemoryCheckpoints, SeenCheckpoint
from client.trust import TrustRoots
from crypto import LiaisonPublicKeys
from ledger import key_log_head, parse_checkpoint_body, parse_note
from tests.vectors.directory.generate import document

VECTOR: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "vectors" / "directory" / "vectors.json").read_text("utf-8"))


class Answer(DirectoryAPI):
    """Serves one answer of the vector."""

    def __init__(self, answer: dict[str, Any]) -> None:
        """Serve ``answer`` (JSON, as the server sends it)."""
        self._answer = answer

    def read(self, liaison_id: str, *, start: int = 0, since: int | None = None,
             witnessed: int = 0, key_since: int | None = None) -> DirectoryPage:
        """The answer, parsed as the client parses the server's."""
        return parse(DirectoryPage, self._answer)


def _client(answer: dict[str, Any]) -> KeyTransparency:
    roots = VECTOR["trust_roots"]
    seen_note = VECTOR["seen"]["note"]
    seen = parse_checkpoint_body(parse_note(seen_note).text_body)
    return KeyTransparency(Answer(answer),
                           TrustRoots.parse(roots["ledger_key"], roots["witnesses"],
                                            roots["quorum"]),
                           MemoryCheckpoints(SeenCheckpoint(seen.size, seen.root, seen_note,
                                                            key_log_head(seen))))


def _key(name: str) -> LiaisonPublicKeys:
    return LiaisonPublicKeys.from_json(VECTOR["expect"]["keys"][name])


def test_the_vector_is_what_the_generator_makes() -> None:
    assert json.loads(json.dumps(document())) == VECTOR


def test_the_answer_proves_the_enrolment_then_the_rotation() -> None:
    kt = _client(VECTOR["answer"])
    history = kt.history(VECTOR["expect"]["liaison"])
    assert [k.keys.key_id for k in history.keys] == VECTOR["expect"]["key_ids"]
    kt.check(VECTOR["expect"]["liaison"], _key("new"), current=True)
    kt.check(VECTOR["expect"]["liaison"], _key("current"))


@pytest.mark.parametrize("refusal", VECTOR["refusals"], ids=lambda r: r["name"])
def test_each_changed_answer_is_refused_with_its_reason(refusal: dict[str, Any]) -> None:
    key = _key(refusal.get("key", "new"))
    with pytest.raises(KeyNotProven) as exc:
        _client(refusal["answer"]).check(VECTOR["expect"]["liaison"], key, current=True)
    assert exc.value.reason == refusal["reason"]

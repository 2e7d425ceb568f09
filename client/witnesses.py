"""``/v1/witnesses``: the witnesses the ledger's checkpoints are submitted to.

Coordinators register and remove them; coordinators and auditors list them.
What a witness's cosignature proves is checked on the client's side against
the trust roots (:mod:`client.trust`), never against this listing: the server
only says where it submits checkpoints and what it last heard back.
"""

from __future__ import annotations

from urllib.parse import quote

from client.models import Model, UtcDatetime, parse, parse_list
from client.session import ApiSession


class Witness(Model):
    """A witness as the server knows it: name, submission URL, key, size it last cosigned."""

    name: str
    url: str
    verifier_key: str
    key_name: str
    last_size: int
    registered_by: str
    registered_at: UtcDatetime


class WitnessesAPI:
    """``/v1/witnesses``: list (coordinators, auditors), register and remove (coordinators)."""

    def __init__(self, session: ApiSession) -> None:
        """Use ``session`` for every call."""
        self._s = session

    def list(self) -> list[Witness]:
        """The active witnesses."""
        return parse_list(Witness, self._s.get_json("/v1/witnesses"))

    def register(self, name: str, url: str, verifier_key: str) -> Witness:
        """Register a witness under ``name`` at submission prefix ``url`` (coordinators)."""
        body = {"name": name, "url": url, "verifier_key": verifier_key}
        return parse(Witness, self._s.post_json("/v1/witnesses", body))

    def remove(self, name: str) -> None:
        """Stop submitting checkpoints to witness ``name`` (coordinators)."""
        self._s.request("DELETE", f"/v1/witnesses/{quote(name, safe='')}")

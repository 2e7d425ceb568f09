"""The custody certificate bundle: dataclasses, canonical JSON, strict parsing, the seal.

Media type ``application/vnd.cadena.custody-certificate.v1+json``; schema
``docs/certificate.schema.json``; reasoning in ``docs/certificate.md``. The
file is one JSON object::

    {"type": <media type>,
     "certificate": {...what the centre attests, covered by the seal...},
     "seal": {"key": <seal verifier key>, "signature": <base64>},
     "disclosure": {...}   optional: a recipient's disclosed inner statement
     "refresh": {...}}     optional: a newer checkpoint and a consistency proof

The seal is Ed25519 over the DSSE pre-authentication encoding of the
canonical JSON of ``certificate`` under the payload type above
(``crypto.signing.pae``), by the centre's seal key, which is published as a
C2SP verifier key string. ``disclosure`` and ``refresh`` are not sealed: each
authenticates itself (the sender's signature and a recipient's signed receipt;
the log's signature and an RFC 9162 consistency proof).

Parsing is strict: every object must have exactly its known fields, numbers
are integers, no key appears twice, binary values are canonical base64. The
seal is checked over the re-encoding of the parsed certificate, which equals
the sealed bytes because nothing is dropped or normalized when parsing.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

from nacl.signing import SigningKey

from crypto import LiaisonPublicKeys, pae
from ledger import (
    ALG_ED25519,
    LedgerError,
    NoteFormatError,
    NoteSigner,
    NoteVerifier,
    SignatureError,
    StrictJSON,
    canonical_json,
)

CERTIFICATE_TYPE = "application/vnd.cadena.custody-certificate.v1+json"
CERTIFICATE_VERSION = 1
MAX_BUNDLE_BYTES = 64 << 20
MAX_TEXT = 500
_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
_KEY_ID = re.compile(r"[0-9a-f]{32}")
_TEXT = re.compile(r"[^\x00-\x1f\x7f]{1," + str(MAX_TEXT) + "}")
T = TypeVar("T")


class CertificateFormatError(LedgerError):
    """A certificate bundle does not parse strictly."""


def _fail(message: str) -> NoReturn:
    raise CertificateFormatError(message)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _fields(obj: Any, where: str, required: tuple[str, ...],
            optional: tuple[str, ...] = ()) -> Mapping[str, Any]:
    if not isinstance(obj, dict):
        _fail(f"{where} is not an object")
    missing, unknown = set(required) - obj.keys(), obj.keys() - set(required) - set(optional)
    if missing or unknown:
        _fail(f"{where}: missing fields {sorted(missing)}, unknown fields {sorted(unknown)}")
    return obj


def _str(obj: Mapping[str, Any], key: str, pattern: re.Pattern[str] | None = None) -> str:
    value = obj[key]
    if not isinstance(value, str) or (pattern is not None and not pattern.fullmatch(value)):
        _fail(f"{key} is not a valid string")
    return value


def _int(obj: Mapping[str, Any], key: str) -> int:
    value = obj[key]
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        _fail(f"{key} is not an integer in [0, 2**63)")
    return value


def _bytes(obj: Mapping[str, Any], key: str, length: int | None = None) -> bytes:
    text = _str(obj, key)
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        _fail(f"{key} is not base64")
    if _b64(data) != text or (length is not None and len(data) != length):
        _fail(f"{key} is not canonical base64 of the right length")
    return data


def _list(obj: Mapping[str, Any], key: str, item: Callable[[Any], T]) -> tuple[T, ...]:
    value = obj[key]
    if not isinstance(value, list):
        _fail(f"{key} is not a list")
    return tuple(item(v) for v in value)


@dataclass(frozen=True)
class Signed:
    """A client-signed object (receipt, key share, header, statement) and its signature."""

    data: bytes
    signature: bytes

    def to_json(self) -> dict[str, str]:
        """``{"signed": base64, "signature": base64}``."""
        return {"signed": _b64(self.data), "signature": _b64(self.signature)}

    @classmethod
    def from_json(cls, obj: Any) -> Signed:
        """Strictly parse the JSON form."""
        o = _fields(obj, "signed object", ("signed", "signature"))
        return cls(_bytes(o, "signed"), _bytes(o, "signature", 64))


@dataclass(frozen=True)
class LoggedEntry:
    """A ledger entry's exact bytes and its C2SP tlog-proof text."""

    entry: bytes
    proof: str

    def to_json(self) -> dict[str, str]:
        """``{"entry": base64, "proof": tlog-proof text}``."""
        return {"entry": _b64(self.entry), "proof": self.proof}

    @classmethod
    def from_json(cls, obj: Any) -> LoggedEntry:
        """Strictly parse the JSON form."""
        o = _fields(obj, "logged entry", ("entry", "proof"))
        return cls(_bytes(o, "entry"), _str(o, "proof"))


@dataclass(frozen=True)
class KeyRecord:
    """A liaison's public key set and the ledger index of the entry that enrolled it."""

    liaison: str
    keys: LiaisonPublicKeys
    enrolment: int

    def to_json(self) -> dict[str, Any]:
        """The JSON form (``key_id`` is derived from the two keys and checked)."""
        return {"liaison": self.liaison, "key_id": self.keys.key_id,
                "signing": _b64(self.keys.signing), "encryption": _b64(self.keys.encryption),
                "enrolment": self.enrolment}

    @classmethod
    def from_json(cls, obj: Any) -> KeyRecord:
        """Strictly parse the JSON form."""
        o = _fields(obj, "key", ("liaison", "key_id", "signing", "encryption", "enrolment"))
        keys = LiaisonPublicKeys(_bytes(o, "signing", 32), _bytes(o, "encryption", 32))
        if _str(o, "key_id", _KEY_ID) != keys.key_id:
            _fail("key_id does not match the keys")
        return cls(_str(o, "liaison", _TEXT), keys, _int(o, "enrolment"))


@dataclass(frozen=True)
class CustodyStep:
    """One hand-off of the custody narrative, derived from one ledger entry."""

    ledger_index: int
    time: str
    event: str
    released_by: str | None
    received_by: str | None
    authority: str
    legal_basis: str | None

    def to_json(self) -> dict[str, Any]:
        """The JSON form (absent parties and basis as ``null``)."""
        return {"ledger_index": self.ledger_index, "time": self.time, "event": self.event,
                "released_by": self.released_by, "received_by": self.received_by,
                "authority": self.authority, "legal_basis": self.legal_basis}

    @classmethod
    def from_json(cls, obj: Any) -> CustodyStep:
        """Strictly parse the JSON form."""
        o = _fields(obj, "custody step", ("ledger_index", "time", "event", "released_by",
                                          "received_by", "authority", "legal_basis"))
        return cls(_int(o, "ledger_index"), _str(o, "time", _TIME), _str(o, "event"),
                   _optional(o, "released_by"), _optional(o, "received_by"),
                   _str(o, "authority"), _optional(o, "legal_basis"))


def _optional(obj: Mapping[str, Any], key: str) -> str | None:
    return None if obj[key] is None else _str(obj, key)


@dataclass(frozen=True)
class Person:
    """A liaison the certificate names, as the centre's directory stated it when sealing."""

    liaison: str
    name: str
    state: str
    role: str

    def to_json(self) -> dict[str, str]:
        """``{"liaison", "name", "state", "role"}``."""
        return {"liaison": self.liaison, "name": self.name, "state": self.state,
                "role": self.role}

    @classmethod
    def from_json(cls, obj: Any) -> Person:
        """Strictly parse the JSON form."""
        o = _fields(obj, "person", ("liaison", "name", "state", "role"))
        return cls(_str(o, "liaison", _TEXT), _str(o, "name", _TEXT), _str(o, "state", _TEXT),
                   _str(o, "role", _TEXT))


_CERT_FIELDS = ("v", "id", "packet_id", "issued_to", "purpose", "issued_at", "issued_by",
                "header", "keys", "events", "enrolments", "receipts", "shares", "policy",
                "custody")


@dataclass(frozen=True)
class Certificate:
    """What the centre attests and seals."""

    id: str
    packet_id: str
    issued_to: str
    purpose: str
    issued_at: str
    issued_by: str
    header: Signed
    keys: tuple[KeyRecord, ...]
    events: tuple[LoggedEntry, ...]
    enrolments: tuple[LoggedEntry, ...]
    receipts: tuple[Signed, ...]
    shares: tuple[Signed, ...]
    policy: str
    custody: tuple[CustodyStep, ...]
    # Optional (certificates sealed before it have none); when present, never empty.
    people: tuple[Person, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The JSON object (the ``certificate`` member of a bundle)."""
        people = {"people": [p.to_json() for p in self.people]} if self.people else {}
        return people | {
            "v": CERTIFICATE_VERSION, "id": self.id, "packet_id": self.packet_id,
            "issued_to": self.issued_to, "purpose": self.purpose, "issued_at": self.issued_at,
            "issued_by": self.issued_by, "header": self.header.to_json(),
            "keys": [k.to_json() for k in self.keys],
            "events": [e.to_json() for e in self.events],
            "enrolments": [e.to_json() for e in self.enrolments],
            "receipts": [r.to_json() for r in self.receipts],
            "shares": [s.to_json() for s in self.shares], "policy": self.policy,
            "custody": [c.to_json() for c in self.custody],
        }

    def sealed_bytes(self) -> bytes:
        """The canonical JSON the seal signs (compact, sorted keys, UTF-8)."""
        return canonical_json(self.to_json())

    @classmethod
    def from_json(cls, obj: Any) -> Certificate:
        """Strictly parse the JSON object."""
        o = _fields(obj, "certificate", _CERT_FIELDS, ("people",))
        if "people" in o and not o["people"]:
            _fail("people, when present, lists someone")
        if _int(o, "v") != CERTIFICATE_VERSION:
            _fail(f"certificate version {o['v']} is not {CERTIFICATE_VERSION}")
        return cls(
            id=_str(o, "id", _ID), packet_id=_str(o, "packet_id", _ID),
            issued_to=_str(o, "issued_to", _TEXT), purpose=_str(o, "purpose", _TEXT),
            issued_at=_str(o, "issued_at", _TIME), issued_by=_str(o, "issued_by", _TEXT),
            header=Signed.from_json(o["header"]), keys=_list(o, "keys", KeyRecord.from_json),
            events=_list(o, "events", LoggedEntry.from_json),
            enrolments=_list(o, "enrolments", LoggedEntry.from_json),
            receipts=_list(o, "receipts", Signed.from_json),
            shares=_list(o, "shares", Signed.from_json), policy=_str(o, "policy"),
            custody=_list(o, "custody", CustodyStep.from_json),
            people=_list(o, "people", Person.from_json) if "people" in o else (),
        )


@dataclass(frozen=True)
class Seal:
    """The centre's seal: its verifier key string and the Ed25519 signature."""

    key: str
    signature: bytes


@dataclass(frozen=True)
class Disclosure:
    """A recipient's disclosure of the sender-signed inner statement (plaintext digests)."""

    statement: Signed
    disclosed_by: str


@dataclass(frozen=True)
class Refresh:
    """A newer signed checkpoint and the RFC 9162 consistency proof to it."""

    checkpoint: str
    consistency: tuple[bytes, ...]


@dataclass(frozen=True)
class Bundle:
    """A complete custody certificate file."""

    certificate: Certificate
    seal: Seal
    disclosure: Disclosure | None = None
    refresh: Refresh | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON object of the file."""
        obj: dict[str, Any] = {
            "type": CERTIFICATE_TYPE, "certificate": self.certificate.to_json(),
            "seal": {"key": self.seal.key, "signature": _b64(self.seal.signature)}}
        if self.disclosure is not None:
            obj["disclosure"] = {**self.disclosure.statement.to_json(),
                                 "disclosed_by": self.disclosure.disclosed_by}
        if self.refresh is not None:
            obj["refresh"] = {"checkpoint": self.refresh.checkpoint,
                              "consistency": [_b64(h) for h in self.refresh.consistency]}
        return obj

    def to_bytes(self) -> bytes:
        """The file: canonical JSON and a final newline."""
        return canonical_json(self.to_json()) + b"\n"


_JSON = StrictJSON(CertificateFormatError, not_json="not a JSON document")


def _load(data: bytes) -> Any:
    if len(data) > MAX_BUNDLE_BYTES:
        _fail(f"a certificate of {len(data)} bytes exceeds {MAX_BUNDLE_BYTES}")
    return _JSON.load(data)


def _seal(obj: Any) -> Seal:
    o = _fields(obj, "seal", ("key", "signature"))
    return Seal(_str(o, "key"), _bytes(o, "signature", 64))


def _disclosure(obj: Any) -> Disclosure:
    o = _fields(obj, "disclosure", ("signed", "signature", "disclosed_by"))
    return Disclosure(Signed(_bytes(o, "signed"), _bytes(o, "signature", 64)),
                      _str(o, "disclosed_by", _TEXT))


def _refresh(obj: Any) -> Refresh:
    o = _fields(obj, "refresh", ("checkpoint", "consistency"))
    hashes = _list(o, "consistency", lambda h: _bytes({"hash": h}, "hash", 32))
    return Refresh(_str(o, "checkpoint"), hashes)


def parse_bundle(data: bytes) -> Bundle:
    """Strictly parse a certificate file; raise :class:`CertificateFormatError`."""
    o = _fields(_load(data), "bundle", ("type", "certificate", "seal"),
                ("disclosure", "refresh"))
    if o["type"] != CERTIFICATE_TYPE:
        _fail(f"type is not {CERTIFICATE_TYPE}")
    return Bundle(Certificate.from_json(o["certificate"]), _seal(o["seal"]),
                  _disclosure(o["disclosure"]) if "disclosure" in o else None,
                  _refresh(o["refresh"]) if "refresh" in o else None)


def seal_verifier_key(signing_key: SigningKey, origin: str) -> str:
    """The seal's verifier key string ``<origin>/certificates+<hex id>+<base64(0x01 || key)>``."""
    return NoteSigner(f"{origin}/certificates", signing_key).verifier_key()


def seal_certificate(certificate: Certificate, signing_key: SigningKey, origin: str) -> Bundle:
    """Seal ``certificate`` with the centre's seal key (DSSE PAE, Ed25519)."""
    signature = signing_key.sign(pae(CERTIFICATE_TYPE, certificate.sealed_bytes())).signature
    return Bundle(certificate, Seal(seal_verifier_key(signing_key, origin), bytes(signature)))


def seal_key(text: str) -> NoteVerifier:
    """Parse a seal verifier key string (an Ed25519, type 0x01 C2SP verifier key)."""
    verifier = NoteVerifier.from_string(text.strip())
    if verifier.alg != ALG_ED25519:
        raise NoteFormatError("a seal key is an Ed25519 (type 0x01) key")
    return verifier


def verify_seal(bundle: Bundle, trusted: NoteVerifier) -> None:
    """Raise :class:`SignatureError` unless ``trusted`` sealed the bundle's certificate."""
    if bundle.seal.key != str(trusted):
        raise SignatureError(f"the certificate was sealed by {bundle.seal.key}, not by the "
                             f"trusted key {trusted}")
    trusted.verify_message(pae(CERTIFICATE_TYPE, bundle.certificate.sealed_bytes()),
                           bundle.seal.signature)

"""C2SP ``tlog-policy``: which logs and witnesses to trust, and the cosigning quorum.

A policy is line based (C2SP tlog-policy "Policy file syntax and structure")::

    log <vkey> [<url>]
    witness <name> <vkey> [<url>]
    group <name> all|any|<k> <name>...
    quorum <name>

Items are separated by spaces or tabs; empty lines and ``#`` comments are
ignored; a group or the quorum may only name witnesses or groups defined on
earlier lines; ``none`` is predefined (no cosignature needed) and may not be
a group member; a name is listed at most once per group; exactly one quorum
line. Log keys are Ed25519 note keys (type 0x01), witness keys cosignature/v1
keys (type 0x04); two lines wrapping the same public key are refused.

A checkpoint is valid under a policy when a listed log signed it and the
quorum holds over the witnesses with a valid cosignature on it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ledger import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    Checkpoint,
    LedgerError,
    NoteFormatError,
    NoteVerifier,
    SignatureError,
    parse_note,
    verify_cosignature,
)

NONE = "none"
_SPACE = re.compile(r"[ \t]+")
_BAD_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_THRESHOLD = re.compile(r"[1-9][0-9]{0,3}")


class PolicyError(LedgerError):
    """A tlog-policy text is malformed or inconsistent."""


@dataclass(frozen=True)
class Group:
    """A witness group: witnessed when at least ``threshold`` of its members are."""

    name: str
    threshold: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class Policy:
    """A parsed tlog-policy: logs, named witnesses, groups, quorum."""

    logs: tuple[NoteVerifier, ...]
    witnesses: tuple[tuple[str, NoteVerifier], ...]
    groups: tuple[Group, ...]
    quorum: str

    def text(self) -> str:
        """The policy as tlog-policy text (logs, witnesses, groups, quorum)."""
        lines = [f"log {log}" for log in self.logs]
        lines += [f"witness {name} {key}" for name, key in self.witnesses]
        for group in self.groups:
            k = "all" if group.threshold == len(group.members) else str(group.threshold)
            lines.append(f"group {group.name} {k} {' '.join(group.members)}")
        lines.append(f"quorum {self.quorum}")
        return "".join(line + "\n" for line in lines)

    def log_for(self, origin: str) -> NoteVerifier | None:
        """The listed log key whose name is ``origin`` (the checkpoint's first line)."""
        return next((log for log in self.logs if log.name == origin), None)

    def holds(self, witnessed: Iterable[str]) -> bool:
        """Whether the quorum holds when exactly the witnesses ``witnessed`` cosigned."""
        done = set(witnessed)
        if self.quorum == NONE:
            return True
        for group in self.groups:  # groups only name earlier names: one pass suffices
            if sum(member in done for member in group.members) >= group.threshold:
                done.add(group.name)
        return self.quorum in done


def _key(text: str, alg: int, what: str) -> NoteVerifier:
    try:
        verifier = NoteVerifier.from_string(text)
    except NoteFormatError as exc:
        raise PolicyError(f"{what} key: {exc}") from None
    if verifier.alg != alg:
        raise PolicyError(f"{what} key {verifier.name} has signature type {verifier.alg:#04x}, "
                          f"not {alg:#04x}")
    return verifier


class _Parser:
    def __init__(self) -> None:
        self.logs: list[NoteVerifier] = []
        self.witnesses: dict[str, NoteVerifier] = {}
        self.groups: dict[str, Group] = {}
        self.quorum: str | None = None
        self.public_keys: set[bytes] = set()

    def defined(self, name: str) -> bool:
        """Whether ``name`` is a witness or group defined so far."""
        return name in self.witnesses or name in self.groups

    def new_key(self, verifier: NoteVerifier) -> None:
        """Refuse a public key listed before (C2SP tlog-policy: no duplicates)."""
        if verifier.public_key in self.public_keys:
            raise PolicyError(f"key of {verifier.name} is listed twice")
        self.public_keys.add(verifier.public_key)

    def line(self, items: list[str]) -> None:
        """Take one non-comment line, split into items."""
        keyword, args = items[0], items[1:]
        if keyword == "log" and len(args) in (1, 2):
            log = _key(args[0], ALG_ED25519, "log")
            self.new_key(log)
            self.logs.append(log)
        elif keyword == "witness" and len(args) in (2, 3):
            self.witness(args[0], _key(args[1], ALG_COSIGNATURE_V1, "witness"))
        elif keyword == "group" and len(args) >= 3:
            self.group(args[0], args[1], args[2:])
        elif keyword == "quorum" and len(args) == 1:
            if self.quorum is not None:
                raise PolicyError("a policy has exactly one quorum line")
            if args[0] != NONE and not self.defined(args[0]):
                raise PolicyError(f"quorum names {args[0]!r}, which is not defined above it")
            self.quorum = args[0]
        else:
            raise PolicyError(f"unknown or malformed line {' '.join(items)!r}")

    def witness(self, name: str, key: NoteVerifier) -> None:
        """Define a witness."""
        if name == NONE or self.defined(name):
            raise PolicyError(f"name {name!r} is reserved or defined twice")
        self.new_key(key)
        self.witnesses[name] = key

    def group(self, name: str, k: str, members: list[str]) -> None:
        """Define a group of earlier names with threshold ``k`` (all, any or 1..n)."""
        if name == NONE or self.defined(name):
            raise PolicyError(f"name {name!r} is reserved or defined twice")
        if len(set(members)) != len(members):
            raise PolicyError(f"group {name} lists a member twice")
        for member in members:
            if member == NONE or not self.defined(member):
                raise PolicyError(f"group {name} names {member!r}, which is not defined above it")
        if k in ("all", "any"):
            threshold = len(members) if k == "all" else 1
        elif _THRESHOLD.fullmatch(k) and int(k) <= len(members):
            threshold = int(k)
        else:
            raise PolicyError(f"group {name} threshold {k!r} is not all, any or 1..n")
        self.groups[name] = Group(name, threshold, tuple(members))


def parse_policy(text: str) -> Policy:
    """Parse a C2SP tlog-policy text strictly; raise :class:`PolicyError`."""
    if _BAD_CHARS.search(text):
        raise PolicyError("policy holds a control character other than tab and newline")
    parser = _Parser()
    for raw in text.split("\n"):
        items = [item for item in _SPACE.split(raw.strip(" \t")) if item]
        if items and not items[0].startswith("#"):
            parser.line(items)
    if parser.quorum is None:
        raise PolicyError("a policy needs a quorum line")
    return Policy(tuple(parser.logs), tuple(parser.witnesses.items()),
                  tuple(parser.groups.values()), parser.quorum)


def make_policy(log: NoteVerifier, witnesses: Mapping[str, NoteVerifier],
                quorum: int) -> Policy:
    """One log, the named witnesses, and a quorum of ``quorum`` of them (0: none).

    One witness needed of one is written ``quorum <name>``; otherwise a group
    ``witnesses`` with the threshold is defined.
    """
    if not 0 <= quorum <= len(witnesses):
        raise PolicyError(f"a quorum of {quorum} needs at least that many witnesses")
    names = tuple(witnesses)
    groups: tuple[Group, ...] = ()
    if quorum == 0:
        name = NONE
    elif len(names) == 1:
        name = names[0]
    else:
        name = "witnesses" if "witnesses" not in witnesses else "quorum-group"
        groups = (Group(name, quorum, names),)
    policy = Policy((log,), tuple(witnesses.items()), groups, name)
    return parse_policy(policy.text())  # the same checks as for a policy read from a file


def cosigners(policy: Policy, checkpoint: Checkpoint, note: str) -> list[str]:
    """Names of the policy's witnesses with a valid cosignature on ``checkpoint`` in ``note``.

    As C2SP signed-note asks, lines by unknown keys are ignored and a line by
    a known key that does not verify rejects the note (``SignatureError``).
    """
    lines = note[note.rfind("\n\n") + 2:].split("\n")
    parse_note(note)
    found: list[str] = []
    for name, key in policy.witnesses:
        prefix = f"\u2014 {key.name} "
        mine = [line for line in lines if line.startswith(prefix)
                and any(key.matches(s) for s in parse_note(f"x\n\n{line}\n").signatures)]
        for line in mine:
            try:
                verify_cosignature(checkpoint, line, key)
            except (SignatureError, NoteFormatError) as exc:
                raise SignatureError(f"cosignature by witness {name} does not verify: "
                                     f"{exc}") from None
        if mine:
            found.append(name)
    return found

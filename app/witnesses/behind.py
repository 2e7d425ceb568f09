"""Is this ledger behind what its witnesses cosigned? (a restored old backup)

A witness keeps the latest checkpoint it cosigned for our origin. The C2SP
tlog-witness protocol has no read endpoint, but its ``add-checkpoint`` says
that size in a 409 answer whenever the request's old size is not it. So the
server asks each registered witness with ``old 0``, an empty proof and its own
latest signed checkpoint: a witness that cosigned anything answers 409 with
its size; one that never did cosigns this checkpoint (200), which is what
the witnessing thread would have submitted anyway. This works with any
C2SP witness, not only ours.

If a witness cosigned a tree larger than the ledger we hold, entries that
witness saw are gone: the server must not serve (it would sign a different
tree at sizes the witnesses already vouched for, which they record as a fork).
There is no override: the operator restores a newer backup, or recovers the
lost entries (docs/operations.md, "Restore"). An unreachable witness proves
nothing either way: it is reported, and the check rests on those that answer.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy.orm import Session

from app.datadir import FILE_MODE
from app.ledger import ledger_for
from app.witnesses import repository as repo
from app.witnesses.witnessing import CONNECT_TIMEOUT_SECONDS, TIMEOUT_SECONDS

EXIT_BEHIND = 3
"""The exit status of ``serve`` and ``restore`` when the ledger is behind its witnesses."""

REMEMBERED = "restore-witnesses"
"""In the data directory: witness URLs given to ``restore --witness``, asked at every start."""


def remember(data_dir: Path, urls: Sequence[str]) -> None:
    """Write ``urls`` (one a line, 0600) for ``serve``'s check; nothing when there are none.

    A restored database does not know the witnesses registered after its
    backup, so ``serve`` would not ask them: the URLs the operator gave to
    ``restore`` are kept here until they are registered again.
    """
    if not urls:
        return
    lines = ["# witnesses given to `cadena-server restore --witness`: serve asks them too",
             "# (remove a line once that witness is registered again: POST /v1/witnesses)",
             *dict.fromkeys(url.rstrip("/") for url in urls)]
    fd = os.open(data_dir / REMEMBERED, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write("\n".join(lines) + "\n")


def remembered(data_dir: Path) -> list[str]:
    """The witness URLs :func:`remember` kept (none if the file is absent)."""
    try:
        text = (data_dir / REMEMBERED).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def witness_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a witness to ask, or ``None``."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        return f"{url!r} is not a URL: {exc}"
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return f"{url!r} is not an http(s) URL with a host"
    return None


@dataclass(frozen=True)
class WitnessAnswer:
    """What one witness said its latest cosigned size for our origin is."""

    name: str
    url: str
    size: int | None
    """``None`` when it did not answer usefully (see ``problem``)."""
    problem: str | None = None


@dataclass(frozen=True)
class BehindReport:
    """The ledger's size against the newest size its witnesses cosigned."""

    local_size: int
    checkpoint_size: int
    answers: tuple[WitnessAnswer, ...]

    @property
    def witnessed_size(self) -> int:
        """The largest size any witness says it cosigned (0 if none answered)."""
        return max((a.size for a in self.answers if a.size is not None), default=0)

    @property
    def lost(self) -> int:
        """Entries the witnesses saw that this ledger no longer holds."""
        return max(0, self.witnessed_size - self.local_size)

    @property
    def behind(self) -> bool:
        """Whether the server must refuse to serve."""
        return self.lost > 0

    def refusal(self) -> str:
        """What the operator reads: how many entries are lost, who says so, and what to do."""
        ahead = [a for a in self.answers if a.size is not None and a.size > self.local_size]
        names = ", ".join(f"{a.name} ({a.size})" for a in ahead)
        claims = "; ".join(f"{a.name} at {a.url} claims {a.size}" for a in ahead)
        return (
            f"refusing to serve: this ledger holds {self.local_size} entries, but witnesses "
            f"cosigned a tree of {self.witnessed_size} entries ({names}): {self.lost} entries "
            "were lost since the backup this database was restored from. The server never "
            "signs a smaller or different tree than its witnesses cosigned. Who says so (the "
            "size in a witness's HTTP 409 answer to add-checkpoint from size 0, which is not "
            f"signed): {claims}. To check a claim, ask that witness's operator for the "
            "checkpoint it cosigned (`cadena witness latest` on the witness node prints it): "
            "a note signed by this ledger's key at that size proves the loss; a witness that "
            "cannot show one is wrong, and should be replaced. What to do: "
            "restore a newer backup if one exists (cadena-server restore --force); otherwise "
            "recover the lost entries from an auditor's export or the witnesses' evidence "
            "before serving again (docs/operations.md, \"Restore\"). If they cannot be "
            "recovered, this ledger cannot continue under its origin: keep this data as "
            "evidence and bootstrap a new ledger with a new origin.")

    def summary(self) -> list[str]:
        """One line per witness, for the operator's log."""
        lines = []
        for answer in self.answers:
            said = (f"cosigned size {answer.size}" if answer.size is not None
                    else f"no answer ({answer.problem})")
            lines.append(f"witness {answer.name} at {answer.url}: {said}")
        return lines


@dataclass(frozen=True)
class _Probe:
    name: str
    url: str
    note: str


def _probe_body(note: str) -> bytes:
    return ("old 0\n\n" + note).encode("utf-8")


def ask(probe: _Probe, client: httpx.Client) -> WitnessAnswer:
    """The size ``probe``'s witness last cosigned for our origin."""
    try:
        response = client.post(probe.url + "/add-checkpoint", content=_probe_body(probe.note),
                               headers={"Content-Type": "text/plain; charset=utf-8"})
    except httpx.HTTPError as exc:
        return WitnessAnswer(probe.name, probe.url, None, f"{type(exc).__name__}: {exc}")
    if response.status_code == 200:
        return WitnessAnswer(probe.name, probe.url, 0)  # it had cosigned nothing of ours
    body = response.text
    if response.status_code == 409 and body.endswith("\n") and body[:-1].isdigit() \
            and len(body) <= 21:
        return WitnessAnswer(probe.name, probe.url, int(body[:-1]))
    return WitnessAnswer(probe.name, probe.url, None,
                         f"HTTP {response.status_code}: {body[:120].strip()}")


def planned(session: Session, extra_urls: Sequence[str] = ()) -> tuple[int, int, list[_Probe]]:
    """The ledger's size, its latest checkpoint size and the witnesses to ask."""
    storage = ledger_for(session).storage
    size = storage.size()
    latest = storage.latest_checkpoint()
    if latest is None:
        return size, 0, []
    probes = [_Probe(w.name, w.url, latest.note) for w in repo.active(session)]
    known = {p.url for p in probes}
    probes += [_Probe(url.rstrip("/"), url.rstrip("/"), latest.note)
               for url in extra_urls if url.rstrip("/") not in known]
    return size, latest.size, probes


def check(session: Session, extra_urls: Sequence[str] = (),
          client: httpx.Client | None = None) -> BehindReport:
    """Ask every registered witness (and ``extra_urls``) for its latest cosigned size."""
    size, checkpoint_size, probes = planned(session, extra_urls)
    session.rollback()  # no transaction stays open across the network calls
    own = client is None
    http = client or httpx.Client(
        timeout=httpx.Timeout(TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS))
    try:
        # Together: an unreachable witness costs its timeout once, not once per witness.
        with ThreadPoolExecutor(max_workers=max(1, min(8, len(probes))),
                                thread_name_prefix="behind") as pool:
            answers = tuple(pool.map(lambda probe: ask(probe, http), probes))
    finally:
        if own:
            http.close()
    return BehindReport(size, checkpoint_size, answers)

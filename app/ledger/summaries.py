"""Refusals that are counted rather than logged one by one, so a flood cannot grow the ledger.

DESIGN invariant 2 logs every refusal. A caller that is not authenticated can
send refusals as fast as it likes, and each logged one is a durable write:
32 token-less clients appended ~109 entries a second (3.5 GB a day). So:

- an unauthenticated caller's refusals (401) are logged one by one up to
  ``refusals_logged_per_interval`` per address and interval; past that they
  are counted;
- so are an authenticated liaison's other refusals past
  ``refusals_logged_per_liaison`` per interval (a stolen token must not be
  able to flood the ledger either; the budget is far above what a person
  at a desk is refused);
- every 429 (a rate or concurrency bound) is counted, per liaison when the
  caller is known, else per address.

Counted refusals become one ``refusal.summary`` entry per caller, reason and
interval, written when the interval ends: the ledger still says that every
one of them happened (``details.count``, ``details.actions``). The problem
body of a counted refusal carries ``ledger_summary: {"id", "until"}``, the
summary entry it will be counted in, instead of its own ``ledger_index``.

Counts live in the process until they are written: a crash loses at most one
interval of counts (never a granted action: those are logged with the action).
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy.orm import sessionmaker

from app.ledger.recording import draft, record_many
from app.ledger.unit_of_work import UnitOfWork, transaction
from ledger import EntryDraft

log = structlog.get_logger()

SUMMARY_ACTION = "refusal.summary"
MAX_TALLIES = 10_000
"""Open tallies per interval; past it, refusals go to one catch-all tally per reason."""
EVERYONE = "*"


@dataclass
class _Tally:
    summary_id: str
    subject_type: str
    subject_id: str
    reason: str
    window: int
    count: int = 0
    actions: Counter[str] = field(default_factory=Counter)


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class RefusalSummaries:
    """Per-interval refusal counts of one process, and the budget of individually logged ones."""

    def __init__(self, *, interval: float, logged_per_interval: int,
                 liaison_logged_per_interval: int = 100,
                 clock: Callable[[], float] = time.time) -> None:
        self.interval = interval
        self.logged_per_interval = logged_per_interval
        self.liaison_logged_per_interval = liaison_logged_per_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._tallies: dict[tuple[str, str, str, int], _Tally] = {}
        self._logged: Counter[tuple[str, int]] = Counter()

    def _window(self) -> int:
        return math.floor(self._clock() / self.interval)

    def may_log(self, address: str) -> bool:
        """Charge one individually logged refusal to ``address``; False once over budget."""
        return self._charge(f"address:{address}", self.logged_per_interval)

    def may_log_liaison(self, liaison_id: str) -> bool:
        """The same for an authenticated liaison's refusals (a larger budget)."""
        return self._charge(f"liaison:{liaison_id}", self.liaison_logged_per_interval)

    def _charge(self, key: str, budget: int) -> bool:
        with self._lock:
            window = self._window()
            if self._logged[(key, window)] >= budget:
                return False
            self._logged[(key, window)] += 1
            return True

    def count(self, *, subject_type: str, subject_id: str, reason: str,
              action: str) -> dict[str, str]:
        """Count one refusal into its interval's summary; the reference for the problem body."""
        with self._lock:
            window = self._window()
            key = (subject_type, subject_id, reason, window)
            tally = self._tallies.get(key)
            if tally is None and len(self._tallies) >= MAX_TALLIES:
                key = (subject_type, EVERYONE, reason, window)
                tally = self._tallies.get(key)
            if tally is None:
                tally = self._tallies[key] = _Tally(uuid.uuid4().hex, subject_type, key[1],
                                                    reason, window)
            tally.count += 1
            tally.actions[action] += 1
            return {"id": tally.summary_id, "until": _iso((window + 1) * self.interval)}

    def due(self, *, everything: bool = False) -> list[EntryDraft]:
        """The summary entries of every ended interval (or of all, at shut-down), taken out."""
        with self._lock:
            window = self._window()
            ended = [k for k in self._tallies if everything or k[3] < window]
            tallies = [self._tallies.pop(k) for k in ended]
            for key in [k for k in self._logged if k[1] < window]:
                del self._logged[key]
        return [self._entry(t) for t in sorted(tallies, key=lambda t: (t.window, t.summary_id))]

    def _entry(self, tally: _Tally) -> EntryDraft:
        details: dict[str, Any] = {
            "summary": tally.summary_id, "count": tally.count,
            "from": _iso(tally.window * self.interval),
            "until": _iso((tally.window + 1) * self.interval),
            # a list: details keys must be snake_case, and actions are dotted names
            "actions": [{"action": a, "count": n} for a, n in sorted(tally.actions.items())],
        }
        return draft(None, SUMMARY_ACTION, {"type": tally.subject_type, "id": tally.subject_id},
                     reason=tally.reason, details=details)


def write_entries(sessions: sessionmaker[UnitOfWork], entries: list[EntryDraft]) -> None:
    """Append summary entries in one transaction."""
    if entries:
        with transaction(sessions) as session:
            record_many(session, entries)


class SummaryWriter:
    """A daemon thread that writes the summaries of each ended interval (and all at stop).

    Entries that could not be written (the database is down) are kept and
    tried again next round, so a summary is late rather than lost.
    """

    def __init__(self, sessions: sessionmaker[UnitOfWork], summaries: RefusalSummaries) -> None:
        self._sessions, self._summaries = sessions, summaries
        self._pending: list[EntryDraft] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="refusal-summaries", daemon=True)

    def start(self) -> None:
        """Start writing in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread, then write every open tally (the process is ending)."""
        self._stop.set()
        self._thread.join(timeout=10)
        self.write(everything=True)

    def _run(self) -> None:
        while not self._stop.wait(min(1.0, self._summaries.interval)):
            self.write(everything=False)

    def write(self, *, everything: bool = False) -> int:
        """Write what is due (every tally with ``everything``); how many entries were written."""
        self._pending.extend(self._summaries.due(everything=everything))
        entries, self._pending = self._pending, []
        try:
            write_entries(self._sessions, entries)
        except Exception as exc:  # kept for the next round
            self._pending = entries + self._pending
            log.error("refusal summaries could not be written; kept for the next round",
                      error=type(exc).__name__, entries=len(entries))
            return 0
        if entries:
            log.info("refusal summaries written", entries=len(entries))
        return len(entries)

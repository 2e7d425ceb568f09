"""The story ``cadena demo`` tells: Mexico, Colombia and Guatemala exchange evidence.

Each function is one step; each runs real ``cadena`` commands through the
:class:`~client.cli.demo.Stage` and checks that they ended as the story says.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from rich.panel import Panel

from client.profile import Profile

if TYPE_CHECKING:
    from client.cli.demo import Stage

PEOPLE = {  # name: (state, role, clearance, what they do)
    "ana": ("MX", "prosecutor", "SECRET", "prosecutor in Mexico City, leads the case"),
    "bruno": ("CO", "prosecutor", "SECRET", "liaison of Colombia at the centre"),
    "carla": ("GT", "prosecutor", "CONFIDENTIAL", "prosecutor in Guatemala"),
    "diego": ("GT", "prosecutor", None, "liaison of Guatemala (short clearance)"),
    "audra": ("CO", "auditor", "RESTRICTED", "the centre's auditor"),
}
STATES = {"MX": "Mexico", "GT": "Guatemala"}
CLEARANCE_SECONDS = 10


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _same(stage: Stage, original: Path, received: Path) -> None:
    if _sha(original) != _sha(received):
        from client.cli.demo import DemoFailed

        raise DemoFailed(f"{received} differs from {original}")
    stage.say(f"  [green]✓[/] {received.name}: identical to what was sent "
              f"(sha256 {_sha(received)[:16]}…)")


def enrol(stage: Stage, url: str) -> None:
    """States, liaisons with their keys, clearances."""
    stage.step(1, "Enrolment", "The coordinator enrols Mexico and Guatemala; each liaison "
               "makes a key pair on their own machine and reads out its fingerprint, which "
               "the coordinator checks while enrolling them. Each also sets the trust roots "
               "the centre publishes: the ledger's key (here with no witness, so they trust "
               "this temporary server's operator alone, and every command says so).")
    known = {s["code"] for s in stage.as_json("states", "list", "--profile", "coord")}
    for code, name in STATES.items():
        if code not in known:
            stage.cadena("states", "add", code, "--name", name, "--note",
                         f"Note verbale {code}/2026", "--profile", "coord")
    for name, (state, role, _, what) in PEOPLE.items():
        stage.say(f"[bold]{stage.who(name)}[/]: {what}")
        keys = _new_profile(stage, name, url)
        stage.cadena("liaisons", "enroll", stage.who(name), "--state", state, "--name",
                     name.title(), "--role", role, "--signing-public", keys["signing_public"],
                     "--encryption-public", keys["encryption_public"], "--fingerprint",
                     keys["fingerprint"], "--profile", "coord")
    stage.step(2, "Clearances", "Clearances are granted for a period and checked at every "
               "access. Diego's will lapse in a few seconds.")
    for name, (_, _, level, _) in PEOPLE.items():
        if level is not None:
            stage.cadena("clearances", "grant", stage.who(name), "--level", level, "--days",
                         "90", "--profile", "coord")
    until = datetime.now(UTC) + timedelta(seconds=CLEARANCE_SECONDS)
    stage.notes["diego_until"] = until
    stage.cadena("clearances", "grant", stage.who("diego"), "--level", "CONFIDENTIAL",
                 "--until", until.strftime("%Y-%m-%dT%H:%M:%S"), "--profile", "coord")
    stage.say("Each liaison uses a colleague's key only once the ledger's signed checkpoint "
              "proves the entry that enrolled it (key transparency); waiting for it...")
    stage.wait_until_proven(url, stage.who(list(PEOPLE)[-1]))


def _new_profile(stage: Stage, name: str, url: str) -> dict[str, str]:
    from client.cli.demo import _new_profile as make

    return {k: str(v) for k, v in make(stage, name, url).items()}


def channel(stage: Stage) -> str:
    """A specialized channel for the crime type."""
    channel_id = f"trafficking{stage.tag}"
    stage.step(3, "A specialized channel", "The coordinator opens a channel for human "
               "trafficking cases, CONFIDENTIAL at least, with the four prosecutors.")
    members = [arg for n in ("ana", "bruno", "carla", "diego")
               for arg in ("--member", stage.who(n))]
    stage.cadena("channels", "create", channel_id, "--name", "Human trafficking MX-CO-GT",
                 "--kind", "specialized", "--crime-type", "human trafficking",
                 "--min-clearance", "CONFIDENTIAL", *members, "--profile", "coord")
    return channel_id


def request(stage: Stage, channel_id: str) -> str:
    """Ana's request with an attachment; Bruno fetches it."""
    stage.step(4, "A request with an attachment", "Ana asks Colombia and Guatemala for "
               "flight records. She encrypts on her machine for Bruno's and Diego's keys and "
               "signs; handling code H2: no onward sharing without her permission.")
    sent = stage.files / "ana"
    sent.mkdir(parents=True, exist_ok=True)
    (sent / "request.txt").write_text(
        "Please send passenger records of flights BOG-MEX between 1 and 15 March for the "
        "persons in the attached list.\n", encoding="utf-8")
    (sent / "persons.csv").write_text("name,passport\nJ. Doe,X1234567\nR. Roe,Y7654321\n",
                                      encoding="utf-8")
    due = (datetime.now(UTC) + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%S")
    created = stage.as_json(
        "send", "--profile", "ana", "--channel", channel_id, "--to", stage.who("bruno"),
        "--to", stage.who("diego"), "--message", str(sent / "request.txt"), "--attach",
        str(sent / "persons.csv"), "--classification", "CONFIDENTIAL", "--handling", "H2",
        "--evaluation", "B2", "--case", "FGR/UEIDMS/0417/2026", "--legal-basis",
        "Chapultepec Consensus, art. 4", "--urgency", "urgent", "--due", due)
    packet_id = str(created["id"])
    stage.say(f"  packet [bold]{packet_id}[/] submitted, ledger entry {created['ledger']['index']}")
    stage.say("Diego sees it in his inbox while his clearance holds:")
    stage.cadena("inbox", "--profile", "diego")
    stage.say("Bruno lists his inbox and fetches it: the client verifies Ana's signature, "
              "every ciphertext and plaintext digest, decrypts, and signs a receipt.")
    stage.cadena("inbox", "--profile", "bruno")
    got = stage.files / "bruno" / "request"
    stage.cadena("fetch", packet_id, "--profile", "bruno", "--out", str(got))
    _same(stage, sent / "request.txt", got / "message.txt")
    _same(stage, sent / "persons.csv", got / "attachments" / "persons.csv")
    return packet_id


def reply(stage: Stage, packet_id: str) -> None:
    """Bruno answers; Ana fetches the reply, sees the thread and the receipts."""
    stage.step(5, "A reply and a receipt", "Bruno answers in the same thread with the "
               "records; Ana fetches the reply and checks who signed receipts.")
    out = stage.files / "bruno"
    (out / "flights.csv").write_text("flight,date,passenger\nAV204,2026-03-03,J. Doe\n",
                                     encoding="utf-8")
    created = stage.as_json("send", "--profile", "bruno", "--reply-to", packet_id, "--text",
                            "Records attached. One match.", "--attach",
                            str(out / "flights.csv"), "--evaluation", "A1")
    got = stage.files / "ana" / "reply"
    stage.cadena("fetch", str(created["id"]), "--profile", "ana", "--out", str(got))
    _same(stage, out / "flights.csv", got / "attachments" / "flights.csv")
    stage.cadena("thread", packet_id, "--profile", "ana")
    stage.cadena("receipts", packet_id, "--profile", "ana")


def refused(stage: Stage, packet_id: str) -> None:
    """Diego's clearance lapsed: his fetch is refused and logged."""
    stage.step(6, "A refused access", "Diego's clearance has lapsed. The server refuses "
               "his attempt, and records the refusal in the ledger.")
    wait = (stage.notes["diego_until"] - datetime.now(UTC)).total_seconds()
    if wait > 0:
        stage.say(f"  (waiting {wait:.0f} s for Diego's clearance to lapse)")
        time.sleep(wait + 0.5)
    stage.cadena("fetch", packet_id, "--profile", "diego", "--out",
                 str(stage.files / "diego" / "request"), code=3)
    if (stage.files / "diego" / "request").exists():
        from client.cli.demo import DemoFailed

        raise DemoFailed("a refused fetch left files behind")


def share(stage: Stage, packet_id: str) -> None:
    """Onward sharing of the H2 packet with the originator's approval."""
    stage.step(7, "Onward sharing with the originator's approval", "Bruno wants Carla "
               "(Guatemala) to see Ana's request. It is H2, so Ana must approve first.")
    stage.cadena("share", packet_id, "--to", stage.who("carla"), "--profile", "bruno")
    stage.cadena("share-requests", packet_id, "--profile", "ana")
    stage.cadena("approve-share", packet_id, "--for", stage.who("carla"), "--profile", "ana")
    stage.cadena("share", packet_id, "--to", stage.who("carla"), "--profile", "bruno")
    got = stage.files / "carla" / "request"
    stage.cadena("fetch", packet_id, "--profile", "carla", "--out", str(got))
    _same(stage, stage.files / "ana" / "persons.csv", got / "attachments" / "persons.csv")


def audit(stage: Stage) -> None:
    """The auditor verifies the whole ledger and exports it."""
    stage.step(8, "Audit", "Audra, the auditor, never sees content. She verifies the "
               "ledger: the checkpoint's signature, every entry and link, and the Merkle "
               "root; then exports it for offline checks.")
    time.sleep(2.0)  # the server signs a checkpoint every second when the ledger grew
    stage.cadena("audit", "export", str(stage.files / "ledger.jsonl"), "--profile", "audra",
                 "--quiet")
    stage.cadena("audit", "verify", "--profile", "audra", "--quiet")
    state = Profile("audra", stage.home).read_json(Profile("audra", stage.home).audit_path)
    note = str((state or {}).get("note", ""))
    stage.console.print(Panel(note.rstrip(), title="signed checkpoint (C2SP tlog-checkpoint)",
                              expand=False))
    stage.notes["checkpoint"] = note


def tell(stage: Stage, url: str) -> None:
    """Run the whole story against the server at ``url``."""
    enrol(stage, url)
    channel_id = channel(stage)
    packet_id = request(stage, channel_id)
    reply(stage, packet_id)
    refused(stage, packet_id)
    share(stage, packet_id)
    audit(stage)
    stage.console.print()
    stage.console.print("[bold green]Demo complete.[/] Every step above is in the ledger.")
    (stage.files / "demo.json").write_text(json.dumps({"packet": packet_id, "server": url},
                                                      indent=2), encoding="utf-8")

"""The coordinator's pages: states, liaisons, clearances, channels and witnesses.

Every change goes through the client SDK (``client.states``, ``.liaisons``,
``.clearances``, ``.channels``, ``.witnesses``), as ``cadena states ...`` and
the other coordination commands do; the server decides what is allowed and
records it. A refusal (an RFC 9457 problem) is shown on a page of its own,
titled in the reader's language when the title is one we know
(:data:`PROBLEM_TITLES`), with the server's detail as sent.

Enrolment reads the liaison's public-key file (``cadena-public-keys.json``
from the desk's first run, or ``cadena keys show --json``) in memory, shows
its fingerprint, and sends nothing until the coordinator has typed the
fingerprint the liaison read out and it matches.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from client.desk.i18n import N_, _
from client.desk.once import acts_once, show_again_at
from client.desk.pages import (
    COORDINATOR,
    Section,
    blocking,
    flash,
    read_form,
    redirect,
    render,
    unlocked_client,
)
from client.desk.uploads import MemorySink, Sink, TooLarge, stream_form
from client.errors import ProblemError
from client.models import Clearance, Liaison
from client.sdk import Client
from crypto import CryptoError, LiaisonPublicKeys

KEY_FILE_LIMIT = 16 << 10
"""Largest public-key file read (a real one is about 300 bytes)."""
DUE_SOON = timedelta(days=14)
"""A clearance that ends within this is marked "due soon"."""
LEVELS = ("RESTRICTED", "CONFIDENTIAL", "SECRET")
ROLES = ("prosecutor", "coordinator", "auditor")
KINDS = ("bilateral", "multilateral", "specialized")
STATUSES = ("active", "suspended", "withdrawn")

LEVEL_NAMES = {"RESTRICTED": N_("Restricted"), "CONFIDENTIAL": N_("Confidential"),
               "SECRET": N_("Secret")}
KIND_NAMES = {"bilateral": N_("Bilateral"), "multilateral": N_("Multilateral"),
              "specialized": N_("Specialized")}
STATUS_NAMES = {"active": N_("Active"), "suspended": N_("Suspended"),
                "withdrawn": N_("Withdrawn")}
PROBLEM_TITLES = {
    "Refused": N_("Refused"),
    "Not found": N_("Not found"),
    "Access denied": N_("Access denied"),
    "Invalid request": N_("Invalid request"),
    "Invalid public key": N_("Invalid public key"),
    "Conflict": N_("Conflict"),
    "State already enrolled": N_("State already enrolled"),
    "State withdrawn": N_("State withdrawn"),
    "Channel conflict": N_("Channel conflict"),
    "Clearance revoked": N_("Clearance revoked"),
    "Membership not allowed": N_("Membership not allowed"),
    "Last active coordinator": N_("Last active coordinator"),
    "Witness conflict": N_("Witness conflict"),
    "Not a witness verifier key": N_("Not a witness verifier key"),
    "Too many requests": N_("Too many requests"),
    "Authentication required": N_("Authentication required"),
}
"""Problem titles the desk translates; any other is shown with the server's detail only."""


def problem_page(request: Request, exc: ProblemError, back: str) -> Response:
    """The server's refusal: its title in the reader's language if known, and its detail."""
    known = PROBLEM_TITLES.get(exc.title)
    return render(request, "coordinator/refused.html",
                  {"title": _(known) if known else _("The server refused"),
                   "detail": exc.detail or exc.title, "back": back},
                  status=exc.status if 400 <= exc.status < 500 else 502, section="coordinator")


async def _call(request: Request, back: str, fn: Any, *args: Any, **kwargs: Any
                ) -> Response | None:
    """Run an SDK change; on a refusal, the problem page (else ``None``)."""
    try:
        await blocking(fn, *args, **kwargs)
    except ProblemError as exc:
        return problem_page(request, exc, back)
    return None


# -- states --------------------------------------------------------------------


async def index(request: Request) -> Response:
    """The section's first page: what needs attention (clearances ending) and where to go."""
    client = await blocking(unlocked_client, request)
    rows = await blocking(_clearance_rows, client)
    attention = [r for r in rows if r.status in ("lapsed", "due-soon")]
    return render(request, "coordinator/index.html", {"attention": attention,
                                                           "status_labels": STATUS_LABELS})


async def states(request: Request) -> Response:
    """Every participating state, and the form to enrol one."""
    client = await blocking(unlocked_client, request)
    return await _states_page(request, client, {}, {})


async def _states_page(request: Request, client: Client, errors: Mapping[str, str],
                       values: Mapping[str, str], status: int = 200) -> Response:
    found = await blocking(client.states.list)
    return render(request, "coordinator/states.html",
                  {"states": found, "errors": errors, "values": values,
                   "status_names": STATUS_NAMES, "statuses": STATUSES}, status=status)


@acts_once(show_again_at(lambda _request: "/coordinator/states"))
async def states_add(request: Request) -> Response:
    """Enrol a state (code, name, joining note)."""
    form = await read_form(request)
    client = await blocking(unlocked_client, request)
    values = {k: form.get(k) for k in ("code", "name", "note")}
    errors = {}
    if len(values["code"]) != 2 or not values["code"].isalpha():
        errors["code"] = _("Enter the state's two-letter ISO code, such as CO.")
    if not values["name"]:
        errors["name"] = _("Enter the state's name.")
    if not values["note"]:
        errors["note"] = _("Enter the reference of the note by which the state joined.")
    if errors:
        return await _states_page(request, client, errors, values, status=400)
    code = values["code"].upper()
    refused = await _call(request, "/coordinator/states", client.states.enrol, code,
                          values["name"], values["note"])
    if refused:
        return refused
    flash(request, _("State %(code)s was enrolled.", code=code))
    return redirect("/coordinator/states")


async def states_status(request: Request) -> Response:
    """Suspend, reactivate or withdraw a state, with a reason."""
    form = await read_form(request)
    client = await blocking(unlocked_client, request)
    code = request.path_params["code"]
    status, reason = form.get("status"), form.get("reason")
    if status not in STATUSES or not reason:
        return await _states_page(request, client, {
            f"reason-{code}": _("Choose the new status and give a reason.")}, {}, status=400)
    refused = await _call(request, "/coordinator/states", client.states.set_status, code,
                          status, reason)
    if refused:
        return refused
    flash(request, _("State %(code)s is now %(status)s.", code=code,
                     status=_(STATUS_NAMES[status])))
    return redirect("/coordinator/states")


# -- liaisons ------------------------------------------------------------------


async def liaisons(request: Request) -> Response:
    """Every liaison with their current key's fingerprint, and the enrolment form."""
    client = await blocking(unlocked_client, request)
    return await _liaisons_page(request, client, {}, {})


async def _liaisons_page(request: Request, client: Client, errors: Mapping[str, str],
                         values: Mapping[str, str], status: int = 200) -> Response:
    found = await blocking(client.liaisons.list)
    known_states = await blocking(client.states.list)
    return render(request, "coordinator/liaisons.html",
                  {"liaisons": found, "states": known_states, "roles": ROLES,
                   "errors": errors, "values": values}, status=status)


class NotAKeyFile(ValueError):
    """The file uploaded as a liaison's public-key file holds no public key set."""


def parse_public_keys(data: bytes) -> LiaisonPublicKeys:
    """The public key set in a liaison's key file; :class:`NotAKeyFile` if it holds none.

    Accepts the desk's ``cadena-public-keys.json`` and ``cadena keys show
    --json`` (``signing_public``/``encryption_public``), and the key set's own
    JSON form (``sign``/``box``).
    """
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotAKeyFile("not JSON") from exc
    if not isinstance(obj, dict):
        raise NotAKeyFile("not a JSON object")
    sign = obj.get("signing_public", obj.get("sign"))
    box = obj.get("encryption_public", obj.get("box"))
    if not isinstance(sign, str) or not isinstance(box, str):
        raise NotAKeyFile("no public keys")
    try:
        return LiaisonPublicKeys(signing=base64.b64decode(sign, validate=True),
                                 encryption=base64.b64decode(box, validate=True))
    except (binascii.Error, CryptoError) as exc:
        raise NotAKeyFile(str(exc)) from exc


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


async def enrol_file(request: Request) -> Response:
    """Step 1 of enrolment: who, and their public-key file (read in memory, never stored)."""
    key_file = MemorySink(KEY_FILE_LIMIT)

    def sink_for(name: str, filename: str) -> Sink | None:
        return key_file if name == "key_file" else None

    try:
        fields = await stream_form(request, sink_for, limit=KEY_FILE_LIMIT + (64 << 10))
        too_large = False
    except TooLarge:
        fields, too_large = {}, True
    client = await blocking(unlocked_client, request)
    values = {k: (fields.get(k) or [""])[0].strip() for k in ("id", "state", "name", "role")}
    errors: dict[str, str] = {}
    if not values["id"]:
        errors["id"] = _("Enter the liaison id the person will log in with.")
    if not values["name"]:
        errors["name"] = _("Enter the person's name.")
    if values["role"] not in ROLES:
        errors["role"] = _("Choose a role.")
    if not values["state"]:
        errors["state"] = _("Choose the person's state.")
    keys = None
    if too_large:
        errors["key_file"] = _("The file is too large to be a public-key file.")
    elif not key_file.data:
        errors["key_file"] = _("Choose the public-key file the person gave you.")
    else:
        try:
            keys = parse_public_keys(bytes(key_file.data))
        except NotAKeyFile:
            errors["key_file"] = _("This file holds no Cadena public keys.")
    if errors or keys is None:
        return await _liaisons_page(request, client, errors, values, status=400)
    return _confirm_page(request, values, keys, {})


def _confirm_page(request: Request, values: Mapping[str, str], keys: LiaisonPublicKeys,
                  errors: Mapping[str, str], status: int = 200) -> Response:
    return render(request, "coordinator/enrol_confirm.html",
                  {"values": values, "key_id": keys.key_id,
                   "signing": _b64(keys.signing), "encryption": _b64(keys.encryption),
                   "errors": errors}, status=status)


def same_fingerprint(typed: str, fingerprint: str) -> bool:
    """Whether what was typed is ``fingerprint`` (spaces, dashes and dots aside)."""
    digits = "".join(c for c in typed if c.isdigit())
    return len(digits) == 30 and digits == fingerprint.replace(" ", "")


@acts_once(show_again_at(lambda _request: "/coordinator/liaisons"))
async def enrol_confirm(request: Request) -> Response:
    """Step 2: the fingerprint the liaison read out, typed; only a match is enrolled."""
    form = await read_form(request)
    values = {k: form.get(k) for k in ("id", "state", "name", "role")}
    try:
        keys = LiaisonPublicKeys(signing=base64.b64decode(form.get("signing"), validate=True),
                                 encryption=base64.b64decode(form.get("encryption"),
                                                             validate=True))
    except (binascii.Error, CryptoError):
        return redirect("/coordinator/liaisons")
    if not same_fingerprint(form.get("fingerprint"), keys.fingerprint):
        return _confirm_page(request, values, keys, {"fingerprint": _(
            "This is not the fingerprint of the file. Do not enrol these keys: ask the "
            "person to read their fingerprint again, or to give you their file again.")},
            status=400)
    client = await blocking(unlocked_client, request)
    role = values["role"] if values["role"] in ROLES else "prosecutor"
    refused = await _call(request, "/coordinator/liaisons", client.liaisons.enrol, values["id"],
                          values["state"].upper(), values["name"], role, keys=keys)
    if refused:
        return refused
    flash(request, _("%(name)s was enrolled with the key of fingerprint %(fingerprint)s.",
                     name=values["name"], fingerprint=keys.fingerprint))
    return redirect("/coordinator/liaisons")


# -- clearances ----------------------------------------------------------------


@dataclass(frozen=True)
class ClearanceRow:
    """A clearance with its holder's name and what the page marks it as."""

    clearance: Clearance
    liaison: Liaison | None
    status: str
    """``revoked``, ``lapsed``, ``due-soon``, ``pending`` or ``in-force``."""


STATUS_LABELS = {"revoked": N_("Revoked"), "lapsed": N_("Lapsed"), "due-soon": N_("Due soon"),
                 "pending": N_("Not yet in force"), "in-force": N_("In force")}


def clearance_status(item: Clearance, now: datetime) -> str:
    """What the list marks ``item`` as at ``now``."""
    if item.revoked_at is not None:
        return "revoked"
    if item.valid_until <= now:
        return "lapsed"
    if item.valid_from > now:
        return "pending"
    return "due-soon" if item.valid_until - now <= DUE_SOON else "in-force"


def _clearance_rows(client: Client) -> list[ClearanceRow]:
    """Every clearance of every liaison, soonest expiry first (revoked ones last)."""
    now = datetime.now(UTC)
    people = {x.id: x for x in client.liaisons.list()}
    rows = [ClearanceRow(c, people.get(c.liaison_id), clearance_status(c, now))
            for liaison_id in people for c in client.clearances.list(liaison_id)]
    return sorted(rows, key=lambda r: (r.status == "revoked", r.clearance.valid_until))


async def clearances(request: Request) -> Response:
    """Every clearance sorted by expiry, with renew and revoke; the grant form."""
    client = await blocking(unlocked_client, request)
    return await _clearances_page(request, client, {}, {})


async def _clearances_page(request: Request, client: Client, errors: Mapping[str, str],
                           values: Mapping[str, str], status: int = 200) -> Response:
    rows = await blocking(_clearance_rows, client)
    people = await blocking(client.liaisons.list)
    return render(request, "coordinator/clearances.html",
                  {"rows": rows, "people": people, "levels": LEVELS, "level_names": LEVEL_NAMES,
                   "status_labels": STATUS_LABELS, "errors": errors, "values": values},
                  status=status)


def _days(text: str) -> int | None:
    try:
        days = int(text)
    except ValueError:
        return None
    return days if 1 <= days <= 3660 else None


@acts_once(show_again_at(lambda _request: "/coordinator/clearances"))
async def clearances_grant(request: Request) -> Response:
    """Grant a clearance from now for a number of days."""
    form = await read_form(request)
    client = await blocking(unlocked_client, request)
    values = {k: form.get(k) for k in ("liaison", "level", "days")}
    errors = {}
    if not values["liaison"]:
        errors["liaison"] = _("Choose who the clearance is for.")
    if values["level"] not in LEVELS:
        errors["level"] = _("Choose a level.")
    days = _days(values["days"])
    if days is None:
        errors["days"] = _("Enter a number of days from 1 to 3660.")
    if errors or days is None:
        return await _clearances_page(request, client, errors, values, status=400)
    start = datetime.now(UTC)
    refused = await _call(request, "/coordinator/clearances", client.clearances.grant,
                          values["liaison"], values["level"], start, start + timedelta(days=days))
    if refused:
        return refused
    flash(request, _("The clearance was granted."))
    return redirect("/coordinator/clearances")


async def clearances_renew(request: Request) -> Response:
    """Renew a clearance: valid for a number of days from now."""
    form = await read_form(request)
    client = await blocking(unlocked_client, request)
    clearance_id = request.path_params["id"]
    days = _days(form.get("days"))
    if days is None:
        return await _clearances_page(request, client, {
            f"days-{clearance_id}": _("Enter a number of days from 1 to 3660.")}, {}, status=400)
    until = datetime.now(UTC) + timedelta(days=days)
    refused = await _call(request, "/coordinator/clearances", client.clearances.renew,
                          clearance_id, until)
    if refused:
        return refused
    flash(request, _("The clearance was renewed."))
    return redirect("/coordinator/clearances")


async def clearances_revoke(request: Request) -> Response:
    """Revoke a clearance at once, with a reason."""
    form = await read_form(request)
    client = await blocking(unlocked_client, request)
    clearance_id = request.path_params["id"]
    reason = form.get("reason")
    if not reason:
        return await _clearances_page(request, client, {
            f"reason-{clearance_id}": _("Give the reason for revoking.")}, {}, status=400)
    refused = await _call(request, "/coordinator/clearances", client.clearances.revoke,
                          clearance_id, reason)
    if refused:
        return refused
    flash(request, _("The clearance was revoked."))
    return redirect("/coordinator/clearances")


# -- channels ------------------------------------------------------------------


async def channels(request: Request) -> Response:
    """Every channel with its members, the form to create one, and adding members."""
    client = await blocking(unlocked_client, request)
    return await _channels_page(request, client, {}, {})


async def _channels_page(request: Request, client: Client, errors: Mapping[str, str],
                         values: Mapping[str, Any], status: int = 200) -> Response:
    found = await blocking(client.channels.list)
    people = await blocking(client.liaisons.list)
    return render(request, "coordinator/channels.html",
                  {"channels": found, "people": people, "levels": LEVELS, "kinds": KINDS,
                   "level_names": LEVEL_NAMES, "kind_names": KIND_NAMES,
                   "names": {p.id: p.name for p in people}, "errors": errors,
                   "values": values}, status=status)


@acts_once(show_again_at(lambda _request: "/coordinator/channels"))
async def channels_create(request: Request) -> Response:
    """Create a channel with its first members."""
    form = await read_form(request)
    client = await blocking(unlocked_client, request)
    values: dict[str, Any] = {k: form.get(k) for k in ("id", "name", "kind", "level", "crime")}
    values["members"] = form.all("members")
    errors = {}
    if not values["id"]:
        errors["id"] = _("Enter an id for the channel.")
    if not values["name"]:
        errors["name"] = _("Enter the channel's name.")
    if values["kind"] not in KINDS:
        errors["kind"] = _("Choose the kind of channel.")
    if values["level"] not in LEVELS:
        errors["level"] = _("Choose the lowest clearance of its members.")
    if errors:
        return await _channels_page(request, client, errors, values, status=400)
    refused = await _call(request, "/coordinator/channels", client.channels.create,
                          values["id"], values["name"], values["kind"], values["level"],
                          members=values["members"], crime_type=values["crime"] or None)
    if refused:
        return refused
    flash(request, _("Channel %(name)s was created.", name=values["name"]))
    return redirect("/coordinator/channels")


async def channels_add_member(request: Request) -> Response:
    """Add a liaison to a channel."""
    form = await read_form(request)
    client = await blocking(unlocked_client, request)
    channel_id, liaison_id = request.path_params["id"], form.get("liaison")
    if not liaison_id:
        return await _channels_page(request, client, {
            f"member-{channel_id}": _("Choose who to add.")}, {}, status=400)
    refused = await _call(request, "/coordinator/channels", client.channels.add_member,
                          channel_id, liaison_id)
    if refused:
        return refused
    flash(request, _("%(who)s was added to the channel.", who=liaison_id))
    return redirect("/coordinator/channels")


async def channels_remove_member(request: Request) -> Response:
    """Take a member out of a channel."""
    await read_form(request)
    client = await blocking(unlocked_client, request)
    channel_id, liaison_id = request.path_params["id"], request.path_params["liaison"]
    refused = await _call(request, "/coordinator/channels", client.channels.remove_member,
                          channel_id, liaison_id)
    if refused:
        return refused
    flash(request, _("%(who)s was taken out of the channel.", who=liaison_id))
    return redirect("/coordinator/channels")


# -- witnesses -----------------------------------------------------------------


async def witnesses(request: Request) -> Response:
    """The witnesses the server submits checkpoints to, and the form to register one."""
    client = await blocking(unlocked_client, request)
    return await _witnesses_page(request, client, {}, {})


async def _witnesses_page(request: Request, client: Client, errors: Mapping[str, str],
                          values: Mapping[str, str], status: int = 200) -> Response:
    found = await blocking(client.witnesses.list)
    return render(request, "coordinator/witnesses.html",
                  {"witnesses": found, "errors": errors, "values": values}, status=status)


@acts_once(show_again_at(lambda _request: "/coordinator/witnesses"))
async def witnesses_register(request: Request) -> Response:
    """Register a witness: its name, submission URL and cosignature verifier key."""
    form = await read_form(request)
    client = await blocking(unlocked_client, request)
    values = {k: form.get(k) for k in ("name", "url", "key")}
    errors = {}
    if not values["name"]:
        errors["name"] = _("Enter the witness's name.")
    if not values["url"]:
        errors["url"] = _("Enter the witness's address.")
    if not values["key"]:
        errors["key"] = _("Paste the witness's verifier key.")
    if errors:
        return await _witnesses_page(request, client, errors, values, status=400)
    refused = await _call(request, "/coordinator/witnesses", client.witnesses.register,
                          values["name"], values["url"], values["key"])
    if refused:
        return refused
    flash(request, _("Witness %(name)s was registered.", name=values["name"]))
    return redirect("/coordinator/witnesses")


async def witnesses_remove(request: Request) -> Response:
    """Stop submitting checkpoints to a witness."""
    await read_form(request)
    client = await blocking(unlocked_client, request)
    name = request.path_params["name"]
    refused = await _call(request, "/coordinator/witnesses", client.witnesses.remove, name)
    if refused:
        return refused
    flash(request, _("Witness %(name)s was removed.", name=name))
    return redirect("/coordinator/witnesses")


section = Section(key="coordinator", title=N_("Coordination"), roles=frozenset({COORDINATOR}),
                  routes=[
                      Route("/", index, methods=["GET"]),
                      Route("/states", states, methods=["GET"]),
                      Route("/states", states_add, methods=["POST"]),
                      Route("/states/{code}/status", states_status, methods=["POST"]),
                      Route("/liaisons", liaisons, methods=["GET"]),
                      Route("/liaisons/enrol", enrol_file, methods=["POST"]),
                      Route("/liaisons/enrol/confirm", enrol_confirm, methods=["POST"]),
                      Route("/clearances", clearances, methods=["GET"]),
                      Route("/clearances", clearances_grant, methods=["POST"]),
                      Route("/clearances/{id}/renew", clearances_renew, methods=["POST"]),
                      Route("/clearances/{id}/revoke", clearances_revoke, methods=["POST"]),
                      Route("/channels", channels, methods=["GET"]),
                      Route("/channels", channels_create, methods=["POST"]),
                      Route("/channels/{id}/members", channels_add_member, methods=["POST"]),
                      Route("/channels/{id}/members/{liaison}/remove", channels_remove_member,
                            methods=["POST"]),
                      Route("/witnesses", witnesses, methods=["GET"]),
                      Route("/witnesses", witnesses_register, methods=["POST"]),
                      Route("/witnesses/{name}/remove", witnesses_remove, methods=["POST"]),
                  ])

"""The shell's pages: home, unlock and lock, the language, and the first run's set-up.

The first run asks one thing per page (GOV.UK's pattern for long forms), and
each step is saved in the profile as it is answered, so a set-up left half
way resumes where it stopped: a passphrase (twice) makes the keys; their
fingerprint is shown to be read out to the coordinator; then the server and
the liaison id; then the trust roots (ledger key, witness keys, quorum), each
shown with its fingerprint to be compared with the centre's out-of-band
copy, never fetched from the server.
"""

from __future__ import annotations

import json

from nacl import pwhash
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from client.desk.i18n import LANGUAGES, _
from client.desk.once import acts_once, show_again_at
from client.desk.pages import (
    blocking,
    desk,
    flash,
    read_form,
    redirect,
    render,
)
from client.desk.security import LANGUAGE_COOKIE
from client.errors import ClientError, UsageError
from client.profile import Profile
from client.trust import TrustRoots, key_fingerprint, load_trust, save_trust
from client.unlock import WrongPassphrase
from crypto import LiaisonKeys, save_keys

MIN_PASSPHRASE = 10
KDF = {
    "sensitive": (pwhash.argon2id.OPSLIMIT_SENSITIVE, pwhash.argon2id.MEMLIMIT_SENSITIVE),
    "moderate": (pwhash.argon2id.OPSLIMIT_MODERATE, pwhash.argon2id.MEMLIMIT_MODERATE),
    "interactive": (pwhash.argon2id.OPSLIMIT_INTERACTIVE, pwhash.argon2id.MEMLIMIT_INTERACTIVE),
}


def setup_step(profile: Profile) -> str | None:
    """The first set-up step the profile still lacks (``None``: set up)."""
    if not profile.has_keys():
        return "keys"
    config = profile.config()
    if not config.server or not config.liaison:
        return "server"
    if load_trust(profile) is None:
        return "trust"
    return None


def _safe_next(target: str | None) -> str:
    # Only a path of this desk: never another origin (//host) or a scheme.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


# -- home, unlock, lock, language ----------------------------------------------------


async def home(request: Request) -> Response:
    """Where the desk opens: the set-up, the unlock page, or the liaison's sections."""
    the_desk = desk(request)
    step = setup_step(the_desk.profile)
    if step is not None:
        return redirect(f"/setup/{step}")
    if not the_desk.agent.unlocked:
        return redirect("/unlock")
    return render(request, "shell/home.html", section="")


async def unlock(request: Request) -> Response:
    """Ask the passphrase (GET), or open the keys with it (POST)."""
    the_desk = desk(request)
    target = _safe_next(request.query_params.get("next"))
    if setup_step(the_desk.profile) is not None:
        return redirect("/")
    if request.method == "GET":
        if the_desk.agent.unlocked:
            return redirect(target)
        return render(request, "shell/unlock.html", {"errors": {}, "next": target}, section="")
    form = await read_form(request)
    try:
        await blocking(the_desk.agent.unlock, form.raw("passphrase"))
    except WrongPassphrase:
        errors = {"passphrase": _("This passphrase does not open your keys. Try again.")}
        return render(request, "shell/unlock.html", {"errors": errors, "next": target},
                      status=400, section="")
    try:
        await blocking(the_desk.agent.login)
        await blocking(the_desk.agent.me)
    except ClientError as exc:
        flash(request, _("Your keys are open, but logging in failed: %(reason)s",
                         reason=str(exc)), kind="warning")
    return redirect(_safe_next(form.get("next")))


async def lock(request: Request) -> Response:
    """Lock now: the keys leave memory; every page then asks the passphrase again."""
    desk(request).agent.lock()
    return redirect("/unlock")


async def language(request: Request) -> Response:
    """Change the language (kept in a cookie and in the profile)."""
    form = await read_form(request)
    chosen = form.get("language")
    if chosen not in LANGUAGES:
        return redirect(_safe_next(form.get("next")))
    profile = desk(request).profile
    config = profile.config()
    config.language = chosen
    profile.save_config(config)
    response = redirect(_safe_next(form.get("next")))
    response.set_cookie(LANGUAGE_COOKIE, chosen, max_age=365 * 24 * 3600, path="/",
                        httponly=True, samesite="strict")
    return response


# -- first run -----------------------------------------------------------------------


async def setup(request: Request) -> Response:
    """The next set-up step, or home when there is none."""
    step = setup_step(desk(request).profile)
    return redirect(f"/setup/{step}" if step else "/")


@acts_once(show_again_at(lambda _request: "/setup/keys"))
async def setup_keys(request: Request) -> Response:
    """Step 1: choose a passphrase (twice); the keys are made and saved encrypted."""
    the_desk = desk(request)
    if the_desk.profile.has_keys():
        return redirect("/setup/fingerprint")
    if request.method == "GET":
        return render(request, "shell/setup_keys.html", {"errors": {}}, section="")
    form = await read_form(request)
    first, second = form.raw("passphrase"), form.raw("confirm")
    errors = {}
    if len(first) < MIN_PASSPHRASE:
        errors["passphrase"] = _("Use at least %(n)s characters.", n=MIN_PASSPHRASE)
    elif first != second:
        errors["confirm"] = _("The two passphrases differ. Type the same one twice.")
    if errors:
        return render(request, "shell/setup_keys.html", {"errors": errors}, status=400,
                      section="")
    keys = LiaisonKeys.generate()
    opslimit, memlimit = KDF[the_desk.options.kdf]
    data = await blocking(save_keys, keys, first, opslimit=opslimit, memlimit=memlimit)
    the_desk.profile.save_key_file(data)
    the_desk.hold_new_keys(keys)
    return redirect("/setup/fingerprint")


async def setup_fingerprint(request: Request) -> Response:
    """Step 2: the fingerprint to read out to the coordinator, and the public key file."""
    profile = desk(request).profile
    if not profile.has_keys():
        return redirect("/setup/keys")
    public = profile.public_keys()
    return render(request, "shell/setup_fingerprint.html",
                  {"public": public, "next_step": setup_step(profile)}, section="")


async def public_keys_file(request: Request) -> Response:
    """The public key file a coordinator enrols (public: it holds no secret)."""
    public = desk(request).profile.public_keys().to_json()
    body = json.dumps({"signing_public": public["sign"], "encryption_public": public["box"]},
                      indent=2) + "\n"
    return Response(body, media_type="application/json", headers={
        "Content-Disposition": 'attachment; filename="cadena-public-keys.json"'})


async def setup_server(request: Request) -> Response:
    """Step 3: the server's address and the liaison id the coordinator gave."""
    profile = desk(request).profile
    config = profile.config()
    values = {"server": config.server or "", "liaison": config.liaison or ""}
    if request.method == "GET":
        return render(request, "shell/setup_server.html", {"errors": {}, "values": values},
                      section="")
    form = await read_form(request)
    values = {"server": form.get("server"), "liaison": form.get("liaison")}
    errors = {}
    if not values["server"].startswith(("https://", "http://")):
        errors["server"] = _("Give the address that starts with https://.")
    if not values["liaison"]:
        errors["liaison"] = _("Give the liaison id the coordinator gave you.")
    if errors:
        return render(request, "shell/setup_server.html", {"errors": errors, "values": values},
                      status=400, section="")
    config.server, config.liaison = values["server"].rstrip("/"), values["liaison"]
    profile.save_config(config)
    profile.forget_token()
    return redirect("/setup")


def _roots(values: dict[str, str]) -> TrustRoots:
    witnesses = [line.strip() for line in values["witnesses"].splitlines() if line.strip()]
    try:
        quorum = int(values["quorum"] or "0")
    except ValueError as exc:
        raise UsageError(_("The quorum must be a whole number.")) from exc
    return TrustRoots.parse(values["ledger_key"], witnesses, quorum)


async def setup_trust(request: Request) -> Response:
    """Step 4: the trust roots, typed or pasted from the centre's published copy."""
    values = {"ledger_key": "", "witnesses": "", "quorum": "0"}
    if request.method == "GET":
        return render(request, "shell/setup_trust.html", {"errors": {}, "values": values},
                      section="")
    form = await read_form(request)
    values = {k: form.get(k) for k in values}
    try:
        roots = _roots(values)
    except UsageError as exc:
        return render(request, "shell/setup_trust.html",
                      {"errors": {"ledger_key": str(exc)}, "values": values}, status=400,
                      section="")
    if form.get("confirmed") != "yes":
        keys = [(_("Ledger"), str(roots.ledger))] + [(_("Witness"), str(w))
                                                     for w in roots.witnesses]
        rows = [(role, key, key_fingerprint(key)) for role, key in keys]
        return render(request, "shell/setup_trust_confirm.html",
                      {"values": values, "rows": rows, "roots": roots,
                       "errors": {} if form.get("confirm_step") != "yes" else {
                           "confirmed": _("Tick the box once every fingerprint matches.")}},
                      status=200 if form.get("confirm_step") != "yes" else 400, section="")
    return await _save_trust(request, roots)


async def _save_trust(request: Request, roots: TrustRoots) -> Response:
    the_desk = desk(request)
    profile = the_desk.profile
    save_trust(profile, roots)
    config = profile.config()
    config.ledger_key = str(roots.ledger)
    profile.save_config(config)
    flash(request, _("Your profile is set up."))
    made = the_desk.take_new_keys()
    if made is not None:
        the_desk.agent.adopt(made)
        try:
            await blocking(the_desk.agent.login)
            await blocking(the_desk.agent.me)
        except ClientError as exc:
            flash(request, _("Your keys are open, but logging in failed: %(reason)s",
                             reason=str(exc)), kind="warning")
    return redirect("/")


routes = [
    Route("/", home, methods=["GET"]),
    Route("/unlock", unlock, methods=["GET", "POST"]),
    Route("/lock", lock, methods=["POST"]),
    Route("/language", language, methods=["POST"]),
    Route("/setup", setup, methods=["GET"]),
    Route("/setup/keys", setup_keys, methods=["GET", "POST"]),
    Route("/setup/fingerprint", setup_fingerprint, methods=["GET"]),
    Route("/setup/public-keys.json", public_keys_file, methods=["GET"]),
    Route("/setup/server", setup_server, methods=["GET", "POST"]),
    Route("/setup/trust", setup_trust, methods=["GET", "POST"]),
]

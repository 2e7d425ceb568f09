"""A unit-of-work route's request handling, planned once when the route is made (ADR 0042).

FastAPI handles each request with code general enough for every kind of
route: two exit stacks for dependencies with ``yield``, a response object
for dependencies that set headers, dependency-cache keys worked out from
security scopes, telemetry hooks, and a Starlette response object for the
answer. A Cadena route uses none of it, and on the hot routes that
generality cost about as much CPU as the ledger append (issue 21). A
:class:`Plan` is the route's dependencies walked once; :func:`lean_app` is
the route's ASGI application from it. Parameters, bodies and answers are
still read, checked and written by FastAPI's own functions
(``request_params_to_args``, ``request_body_to_args``,
``serialize_response``): the same values, the same 422 errors, the same
bytes. A route whose dependencies need what is left out (a dependency with
``yield``, a synchronous dependency, security scopes, a ``Response`` or
``BackgroundTasks`` parameter, a form body) gets no plan and is served by
FastAPI as before (:func:`plan_of` says ``None``).
"""

from __future__ import annotations

import email.message
import inspect
import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import params
from fastapi._compat import ModelField
from fastapi._compat.shared import field_annotation_is_sequence
from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import (
    _get_param_aliases,
    _get_param_model,
    _is_json_field,
    _validate_value_with_model_field,
    request_body_to_args,
    request_params_to_args,
)
from fastapi.exceptions import RequestValidationError
from fastapi.routing import serialize_response
from fastapi.utils import is_body_allowed_for_status_code
from pydantic_core import PydanticUndefined
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

_UNSET: Any = PydanticUndefined
"""No body was read (FastAPI's ``Undefined``: a body parameter then reports it missing)."""


@dataclass(frozen=True, slots=True)
class Params:
    """One kind of a dependant's parameters (path, query, header, cookie), read as
    ``request_params_to_args`` reads them.

    Where every parameter is one plain value under one name (no model of
    parameters, no list, no JSON, no alias choices: all of Cadena's), the names
    and locations FastAPI works out for each parameter on every request are
    worked out here once (``simple``); otherwise FastAPI's function reads them.
    """

    fields: list[ModelField]
    simple: tuple[tuple[str, str, tuple[str, str], ModelField], ...] | None

    @classmethod
    def of(cls, fields: list[ModelField]) -> Params:
        """The plan for reading ``fields``."""
        simple = []
        for field in fields:
            aliases = _get_param_aliases(field)
            if (len(aliases) != 1 or _get_param_model(field) is not None
                    or _is_json_field(field)
                    or field_annotation_is_sequence(field.field_info.annotation)
                    or not isinstance(field.field_info, params.Param)):
                return cls(fields, None)
            alias = aliases[0][1]
            simple.append((field.name, alias, (field.field_info.in_.value, alias), field))
        return cls(fields, tuple(simple))

    def read(self, given: Any, values: dict[str, Any], errors: list[Any]) -> None:
        """Validate the parameters in ``given`` into ``values``, or their errors into
        ``errors``."""
        if self.simple is None:
            got, wrong = request_params_to_args(self.fields, given)
            values.update(got)
            errors += wrong
            return
        for name, alias, loc, field in self.simple:
            value = given.get(alias)
            checked, wrong = _validate_value_with_model_field(
                field=field, value=PydanticUndefined if value is None else value, values=values,
                loc=loc)
            if wrong:
                errors.extend(wrong)
            else:
                values[name] = checked


@dataclass(frozen=True, slots=True)
class Plan:
    """One dependant, walked once: what to solve for it, in FastAPI's order."""

    call: Callable[..., Awaitable[Any]]
    name: str | None
    use_cache: bool
    subs: tuple[Plan, ...]
    path: Params | None
    query: Params | None
    header: Params | None
    cookie: Params | None
    body: list[ModelField]
    request_name: str | None


def plan_of(dependant: Dependant) -> Plan | None:
    """``dependant``'s plan, or ``None`` if it needs what a plan leaves out (module doc)."""
    if (dependant.call is None or not inspect.iscoroutinefunction(dependant.call)
            or dependant.websocket_param_name or dependant.http_connection_param_name
            or dependant.response_param_name or dependant.background_tasks_param_name
            or dependant.security_scopes_param_name or dependant.own_oauth_scopes
            or dependant.parent_oauth_scopes or dependant.concurrency is not None
            or any(isinstance(f.field_info, params.Form) for f in dependant.body_params)):
        return None
    subs = []
    for sub in dependant.dependencies:
        planned = plan_of(sub)
        if planned is None:
            return None
        subs.append(planned)

    def kind(fields: list[ModelField]) -> Params | None:
        return Params.of(fields) if fields else None

    return Plan(dependant.call, dependant.name, dependant.use_cache, tuple(subs),
                kind(dependant.path_params), kind(dependant.query_params),
                kind(dependant.header_params), kind(dependant.cookie_params),
                dependant.body_params, dependant.request_param_name)


async def _solve(plan: Plan, request: Request, body: Any, embed: bool,
                 cache: dict[Any, Any]) -> tuple[dict[str, Any], list[Any]]:
    """``solve_dependencies`` for a planned dependant: sub-dependencies in order (a
    failing one's errors kept, the rest still solved), then its own parameters."""
    values: dict[str, Any] = {}
    errors: list[Any] = []
    for sub in plan.subs:
        sub_values, sub_errors = await _solve(sub, request, body, embed, cache)
        if sub_errors:
            errors.extend(sub_errors)
            continue
        if sub.use_cache and sub.call in cache:
            solved = cache[sub.call]
        else:
            solved = await sub.call(**sub_values)
        if sub.name is not None:
            values[sub.name] = solved
        cache.setdefault(sub.call, solved)
    # In FastAPI's order: each kind read whole, its errors after the last kind's.
    if plan.path is not None:
        plan.path.read(request.path_params, values, errors)
    if plan.query is not None:
        plan.query.read(request.query_params, values, errors)
    if plan.header is not None:
        plan.header.read(request.headers, values, errors)
    if plan.cookie is not None:
        plan.cookie.read(request.cookies, values, errors)
    if plan.body:
        got, wrong = await request_body_to_args(body_fields=plan.body,
                                                received_body=body,
                                                embed_body_fields=embed)
        values.update(got)
        errors.extend(wrong)
    if plan.request_name:
        values[plan.request_name] = request
    return values, errors


def _is_json(content_type: str) -> bool:
    if content_type == "application/json":
        return True
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


async def _read_body(request: Request, strict: bool) -> Any:
    """The request's body as FastAPI reads it for a JSON body parameter."""
    try:
        raw = await request.body()
        if not raw:
            return _UNSET
        content_type = request.headers.get("content-type")
        if (not content_type and not strict) or (content_type and _is_json(content_type)):
            return json.loads(raw)
        return raw
    except json.JSONDecodeError as exc:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error",
              "input": {}, "ctx": {"error": exc.msg}}], body=exc.doc) from exc
    except HTTPException:
        raise
    except Exception as exc:
        raise HTTPException(status_code=400, detail="There was an error parsing the body") from exc


def lean_app(route: Any, plan: Plan) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """``route``'s ASGI application from ``plan`` (its endpoint is ``plan.call``).

    ``route`` is an :class:`~fastapi.routing.APIRoute`, or FastAPI's object for one
    inclusion of one (the same attributes).

    Errors are raised, not answered: the application's exception handlers
    answer them, as they answer every other route's.
    """
    status = route.status_code
    field = route.response_field
    response_class = route.response_class
    default_class = isinstance(response_class, DefaultPlaceholder)
    if default_class:
        response_class = response_class.value
    dump_json = field is not None and default_class
    strict = route.strict_content_type
    strict = strict.value if isinstance(strict, DefaultPlaceholder) else strict
    embed = route._embed_body_fields
    reads_body = route.body_field is not None
    empty = not is_body_allowed_for_status_code(status)
    options = {"include": route.response_model_include, "exclude": route.response_model_exclude,
               "by_alias": route.response_model_by_alias,
               "exclude_unset": route.response_model_exclude_unset,
               "exclude_defaults": route.response_model_exclude_defaults,
               "exclude_none": route.response_model_exclude_none}
    start_status = status or 200

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        body = await _read_body(request, strict) if reads_body else _UNSET
        values, errors = await _solve(plan, request, body, embed, {})
        if errors:
            raise RequestValidationError(errors, body=None if body is _UNSET else body)
        result = await plan.call(**values)
        if isinstance(result, Response):
            await result(scope, receive, send)
            return
        content = await serialize_response(field=field, response_content=result,
                                           is_coroutine=True, dump_json=dump_json, **options)
        if dump_json and not empty:  # what Response(content, media_type=JSON) sends
            await send({"type": "http.response.start", "status": start_status,
                        "headers": [(b"content-length", str(len(content)).encode()),
                                    (b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": content})
            return
        args: dict[str, Any] = {"status_code": status} if status else {}
        response = (Response(content, media_type="application/json", **args) if dump_json
                    else response_class(content, **args))
        if empty:
            response.body = b""
        await response(scope, receive, send)

    return app


def lean_for(route: Any, scope: Scope) -> Callable[[Scope, Receive, Send], Awaitable[None]] | None:
    """``route``'s lean application if it serves ``scope`` (a request ``route`` matched):
    one of the route's methods, and no dependency overridden by the application
    (FastAPI then serves it, overrides and all)."""
    lean: Callable[[Scope, Receive, Send], Awaitable[None]] | None = getattr(route, "lean", None)
    if (lean is None or scope["method"] not in route.methods
            or getattr(scope.get("app"), "dependency_overrides", None)):
        return None
    return lean


class HotRoutes:
    """The router's innermost application, finding the hot routes without walking the rest.

    Starlette's router tries every route's pattern in turn, and FastAPI does so
    through every included router (about 5% of a retrieve's CPU). The routes
    given here, each as the application includes it (``effective``: FastAPI's
    object for one inclusion of a route, or the route), of the form
    ``/literal`` or ``/literal/{parameter}``, are looked up by method and path
    instead, checked with their own ``matches``, and served by their lean
    application. Any other request, one they do not match in full, or any
    request while the application overrides a dependency, goes to ``router``
    as before. No two routes answer the same method and path
    (tests/app/test_lean_path.py), so a full match here is the route the
    router would have chosen.
    """

    def __init__(self, router: Any, effective: list[Any]) -> None:
        self.router = router
        self.fallback = router.middleware_stack
        self.exact: dict[tuple[str, str], Any] = {}
        self.under: dict[tuple[str, str], Any] = {}
        for route in effective:
            if getattr(route, "lean", None) is None:  # FastAPI's handling needs its router
                raise ValueError(f"{route.path}: has no lean application")
            head, brace, tail = route.path.partition("{")
            if not brace:
                table, key = self.exact, route.path
            elif head.endswith("/") and "/" not in tail and tail.endswith("}"):
                table, key = self.under, head
            else:
                raise ValueError(f"{route.path}: not /literal or /literal/{{parameter}}")
            for method in route.methods:
                table[(method, key)] = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve ``scope`` by its hot route if it has one, else by the router."""
        if scope["type"] == "http" and not scope.get("root_path"):
            path, method = scope["path"], scope["method"]
            route = self.exact.get((method, path))
            if route is None:
                route = self.under.get((method, path[:path.rfind("/") + 1]))
            lean = lean_for(route, scope) if route is not None else None
            if route is not None and lean is not None:
                match, child = route.matches(scope)
                if match is Match.FULL:
                    scope["router"] = self.router
                    scope.update(child)
                    scope["route"] = getattr(route, "original_route", route)
                    await lean(scope, receive, send)
                    return
        await self.fallback(scope, receive, send)


def as_included(routes: list[Any]) -> Iterator[Any]:
    """Each route of an application's ``routes`` as the application includes it: FastAPI
    0.163 keeps an included router as one entry, whose ``effective_route_contexts`` are
    its routes with the inclusion's prefix and dependencies."""
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            yield from contexts()
        else:
            yield route

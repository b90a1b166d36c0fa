"""Every route states its scope; the health endpoints are the only exceptions, by name."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.routing import RouteContext, iter_route_contexts

from matchhub.identity.auth import LookupCaller, authenticates_from_view, route_scope
from matchhub.identity.scopes import Scope
from matchhub.kit.requests import ReadOnly, read_only
from matchhub.kit.settings import Settings
from matchhub.web.app import create_app
from matchhub.web.gate import _route, _Routes
from matchhub.web.health import UNSCOPED_ROUTES


def _routes() -> list[RouteContext]:
    app = create_app(Settings(home=Path("/nonexistent")))
    return list(iter_route_contexts(app.routes))


def _scope(route: RouteContext) -> Scope | None:
    dependant = getattr(route, "dependant", None)
    return route_scope(dependant) if dependant is not None else None


def test_every_route_has_an_explicit_scope() -> None:
    unscoped = [
        f"{sorted(r.methods or [])} {r.path}"
        for r in _routes()
        if r.path not in UNSCOPED_ROUTES and _scope(r) is None
    ]
    assert unscoped == []


def test_route_scope_table() -> None:
    """The table a reviewer reads: which scope guards which route."""
    table = {(method, r.path): _scope(r) for r in _routes() for method in r.methods or []}
    assert table[("GET", "/v1/whoami")] is Scope.identity_read
    assert table[("GET", "/healthz")] is None
    assert table[("GET", "/metrics")] is Scope.metrics_read
    for method, path in [
        ("POST", "/v1/cases"),
        ("POST", "/v1/cases/{case_id}/transitions"),
        ("GET", "/v1/cases/{case_id}"),
        ("GET", "/v1/cases"),
    ]:
        assert table[(method, path)] is Scope.cases
    assert table[("GET", "/v1/feedback")] is Scope.feedback
    scoped = {path for (_, path), scope in table.items() if scope}
    assert {path for path in scoped if not path.startswith("/v1/")} == {"/metrics"}


def test_every_scoped_route_declares_its_auth_errors() -> None:
    missing = [
        r.path
        for r in _routes()
        if _scope(r) is not None and not {401, 403} <= set(getattr(r, "responses", None) or {})
    ]
    assert missing == []


def _read_only(route: RouteContext) -> bool:
    dependant = getattr(route, "dependant", None)
    return dependant is not None and any(d.call is read_only for d in dependant.dependencies)


def test_read_only_routes_are_reads() -> None:
    """A read-only route's transaction is never committed and its audit entry is written by
    the group-commit writer; the set is deliberate, and none of it may change state."""
    marked = {(m, r.path) for r in _routes() if _read_only(r) for m in r.methods or []}
    assert marked == {
        ("GET", "/v1/whoami"),
        ("GET", "/v1/flags"),
        ("POST", "/v1/lookups"),
        ("GET", "/v1/match-jobs/{job_id}"),
        ("GET", "/v1/match-jobs/{job_id}/results"),
        ("GET", "/v1/uploads/{upload_id}"),
        ("GET", "/v1/cases"),
        ("GET", "/v1/cases/{case_id}"),
        ("GET", "/v1/feedback"),
        ("GET", "/v1/audit/entries"),
        ("GET", "/v1/audit/checkpoint"),
        ("GET", "/v1/audit/activity"),
        ("GET", "/v1/audit/proofs/inclusion"),
        ("GET", "/v1/audit/proofs/consistency"),
    }


def _from_view(route: RouteContext) -> bool:
    dependant = getattr(route, "dependant", None)
    return dependant is not None and authenticates_from_view(dependant)


def test_only_read_only_routes_authenticate_from_the_lookup_view() -> None:
    """Only a read-only route's entry goes through the writer's view-generation check; a route
    that writes commits its entry in its own transaction, unchecked (identity/auth.py)."""
    viewed = {r.path for r in _routes() if _from_view(r)}
    assert viewed == {"/v1/lookups"}
    assert [r.path for r in _routes() if _from_view(r) and not _read_only(r)] == []


def test_the_view_check_sees_a_writing_route_that_authenticates_from_the_view() -> None:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.post("/v1/writes")
    def writes(principal: LookupCaller) -> None: ...

    @app.get("/v1/reads", dependencies=[ReadOnly])
    def reads(principal: LookupCaller) -> None: ...

    routes = {r.path: r for r in iter_route_contexts(app.routes)}
    table = {path: (_from_view(r), _read_only(r)) for path, r in routes.items()}
    assert table == {"/v1/writes": (True, False), "/v1/reads": (True, True)}


def test_every_route_with_a_body_documents_the_gates_refusals() -> None:
    """The gate (web/gate.py) answers any body too slow with 408 and too large with 413: each
    route that takes a body says so in the document its clients are generated from."""
    document = create_app(Settings(home=Path("/nonexistent"))).openapi()
    undocumented = [
        (method.upper(), path, status)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if "requestBody" in operation
        for status in ("408", "413")
        if status not in operation["responses"]
    ]
    assert undocumented == []


def test_the_gate_finds_the_route_the_router_would_pick_also_when_it_remembers() -> None:
    routes = _routes()
    table = _Routes(routes)
    for route in routes:
        for method in route.methods or []:
            path = route.path.replace("{", "").replace("}", "")  # a parameter's own name
            scope = {"type": "http", "method": method, "path": path, "root_path": ""}
            for _ in range(2):  # found, then remembered (or not, for a path with parameters)
                assert table.find(scope) is _route(routes, scope)
    remembered = {path for (_, path, _) in table._fixed}
    assert "/v1/lookups" in remembered
    assert not any("_id" in path for path in remembered)


def test_every_scoped_route_documents_the_end_user_header() -> None:
    # require() declares it as a parameter; require_viewed() reads it without, and its routes
    # show it through openapi_extra (END_USER_PARAMETER).
    document = create_app(Settings(home=Path("/nonexistent"))).openapi()
    missing = []
    for route in _routes():
        if _scope(route) is None or not route.path.startswith("/v1/"):
            continue
        for method in route.methods or []:
            operation = document["paths"][route.path][method.lower()]
            names = [p["name"] for p in operation.get("parameters", [])]
            if names.count("Matchhub-End-User") != 1:
                missing.append(f"{method} {route.path}")
    assert missing == []


def test_every_query_parameter_takes_one_value() -> None:
    """The gate refuses a query parameter given twice (web/gate.py), which is right only while
    no route reads one as a list: a route that needs one must first let the gate know."""
    document = create_app(Settings(home=Path("/nonexistent"))).openapi()
    lists = [
        f"{path} {parameter['name']}"
        for path, operations in document["paths"].items()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "query"
        and any(
            schema.get("type") == "array"
            for schema in [parameter["schema"], *parameter["schema"].get("anyOf", [])]
        )
    ]
    assert lists == []

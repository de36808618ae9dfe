"""The routes the running app really serves, read from the ASGI app Reflex builds
for its production backend (``reflex run --env prod`` starts
``uvicorn --factory course_app.course_app:app`` with compiling skipped and the
built front end mounted), not from ``build_api()`` alone: Reflex's own routes
(``/ping``, ``/_health``, the socket, ``/_upload`` when an upload component is
used), the API transformer's routes and anything mounted on either.

Run as ``python -m tests.security.route_table OUT.json`` with the server's
environment (its build folder); the routes are written to OUT.json. Building the
app in the test process would compile pages there, so it runs apart."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable

MOUNT = "MOUNT"  # a sub-application with no route table of its own (the socket, static files)


def _routes_of(app) -> list | None:
    """The route table behind an ASGI app, through middleware wrappers (``.app``)."""
    seen: set[int] = set()
    while app is not None and id(app) not in seen:
        seen.add(id(app))
        routes = getattr(app, "routes", None)
        if routes is not None:
            return list(routes)
        app = getattr(app, "app", None)
    return None


def walk(app) -> list[tuple[str, str, str]]:
    """(method or MOUNT or WEBSOCKET, full path, what serves it) for every route of
    ``app``: through Starlette mounts, FastAPI's included routers (with their
    prefixes) and middleware. HEAD, GET's twin, is left out."""
    from starlette.routing import Host, Mount, WebSocketRoute

    found: list[tuple[str, str, str]] = []

    def visit(routes: Iterable, prefix: str) -> None:
        for route in routes:
            if hasattr(route, "effective_candidates"):  # FastAPI: an included router, prefix applied
                visit(route.effective_candidates(), prefix)
                continue
            effective = getattr(route, "starlette_route", None) or route
            if isinstance(effective, Host):
                visit(_routes_of(effective.app) or [], prefix)
            elif isinstance(effective, Mount):
                inner = _routes_of(effective.app)
                path = prefix + effective.path
                if not inner:  # a leaf application, or one whose routes cannot be listed
                    found.append((MOUNT, path or "/", type(effective.app).__name__))
                else:
                    visit(inner, path)
            elif isinstance(effective, WebSocketRoute) or type(effective).__name__.endswith("WebSocketRoute"):
                found.append(("WEBSOCKET", prefix + effective.path, type(effective).__name__))
            else:
                endpoint = getattr(route, "endpoint", None)
                label = getattr(endpoint, "__qualname__", type(route).__name__)
                for method in sorted(getattr(route, "methods", None) or ["ANY"]):
                    if method != "HEAD":
                        found.append((method, prefix + route.path, label))

    visit(_routes_of(app) or [], "")
    return found


def build_production_app():
    """The ASGI app exactly as the production backend builds it."""
    from reflex_base.environment import environment

    environment.REFLEX_SKIP_COMPILE.set(True)
    environment.REFLEX_MOUNT_FRONTEND_COMPILED_APP.set(True)
    from course_app.course_app import app

    return app, app()


def main(out: str, inject: bool = False) -> None:
    app, asgi = build_production_app()
    if inject:
        # The suite's own proof that it sees routes added outside build_api(): one on
        # Reflex's Starlette app, one router mounted on the API transformer.
        from fastapi import APIRouter
        from starlette.responses import PlainTextResponse

        app._api.add_route("/_injected_on_reflex", lambda request: PlainTextResponse("x"), methods=["GET"])
        extra = APIRouter(prefix="/injected")
        extra.add_api_route("/thing", lambda: {}, methods=["DELETE"])
        transformers = app.api_transformer if isinstance(app.api_transformer, list) else [app.api_transformer]
        api = next(t for t in transformers if hasattr(t, "include_router"))  # the FastAPI app (others wrap)
        api.include_router(extra)
        from starlette.staticfiles import StaticFiles

        api.mount("/injected-files", StaticFiles(directory=".", check_dir=False))
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(walk(asgi), handle)


if __name__ == "__main__":
    main(sys.argv[1], inject="--inject" in sys.argv[2:])

"""Every route in one table: method, path, handler, the least role it needs, and its summary.

The table also produces the OpenAPI description and drives the role tests, so a route cannot be
added without saying who may call it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from service import __version__
from service.handlers import checks, meta


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Callable
    role: str  # "public" | "user" | "moderator" | "admin"
    summary: str
    request: str | None = None  # "multipart" | "json" | None
    produces: str = "application/json"
    tags: tuple[str, ...] = field(default=())


ROUTES: list[Route] = [
    Route("GET", "/health", meta.health, "public", "Service status, loaded models and providers",
          tags=("meta",)),
    Route("GET", "/openapi.json", meta.openapi, "public", "This API description", tags=("meta",)),
    Route("GET", "/.well-known/jwks.json", meta.jwks, "public",
          "Public keys of the local token issuer", tags=("auth",)),
    Route("POST", "/v1/checks", checks.create_check, "user",
          "Check an image (multipart 'image', JSON {url}, or image bytes)", request="multipart",
          tags=("checks",)),
    Route("GET", "/v1/checks", checks.list_or_lookup, "user",
          "With ?sha256=: the stored result without sending the image; else your checks",
          tags=("checks",)),
    Route("GET", "/v1/checks/{check_id}", checks.get_check, "user", "A stored check",
          tags=("checks",)),
    Route("GET", "/v1/checks/{check_id}/heatmap.png", checks.heatmap, "user",
          "Where the detectors looked, over the image", produces="image/png", tags=("checks",)),
    Route("POST", "/predict", checks.predict, "user",
          "Older seed-system shape: multipart 'image' -> {result, confidence}",
          request="multipart", tags=("checks",)),
]


def add_routes(app: web.Application, routes: list[Route] = ROUTES) -> None:
    for r in routes:
        app.router.add_route(r.method, r.path, r.handler)


def openapi_document(routes: list[Route] = ROUTES) -> dict:
    paths: dict = {}
    for r in routes:
        op: dict = {
            "summary": r.summary,
            "operationId": r.handler.__name__ + "_" + r.method.lower(),
            "tags": list(r.tags),
            "responses": {
                "200": {"description": "OK", "content": {r.produces: {}}},
                "default": {"description": "Error", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Error"}}}},
            },
            "x-required-role": r.role,
        }
        if r.role != "public":
            op["security"] = [{"bearer": []}]
        params = [p.strip("{}") for p in r.path.split("/") if p.startswith("{")]
        if params:
            op["parameters"] = [{"name": p, "in": "path", "required": True,
                                 "schema": {"type": "string"}} for p in params]
        if r.request == "multipart":
            op["requestBody"] = {"content": {
                "multipart/form-data": {"schema": {"type": "object", "properties": {
                    "image": {"type": "string", "format": "binary"}}}},
                "application/json": {"schema": {"type": "object", "properties": {
                    "url": {"type": "string"}}}}}}
        elif r.request == "json":
            op["requestBody"] = {"content": {"application/json": {"schema": {"type": "object"}}}}
        paths.setdefault(r.path, {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Realcheck", "version": __version__,
                 "description": "Checks whether faces in images are real or generated."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "bearerFormat": "JWT"}},
            "schemas": {"Error": {"type": "object", "required": ["error", "message"],
                                  "properties": {"error": {"type": "string"},
                                                 "message": {"type": "string"}}}},
        },
    }

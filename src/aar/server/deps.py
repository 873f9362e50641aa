"""Request helpers shared by the routers: bounded body reading, strict JSON parsing, responses."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import Path, Query, Request, Response
from pydantic import AfterValidator, BaseModel, ValidationError

from aar.server.errors import ApiError
from aar.server.schemas import MAX_ID

M = TypeVar("M", bound=BaseModel)


def _existing_id(value: int) -> int:
    """A path id, or 404 when it is outside the id range (no row can have it, on any database).

    Checked here, before any query, so that SQLite and PostgreSQL (whose ids are 32-bit) answer
    alike. Raising ApiError (not ValueError) makes it a 404 instead of a validation error.
    """
    if not 1 <= value <= MAX_ID:
        raise ApiError(404, "not_found", f"no object with id {value}", {"max_id": MAX_ID})
    return value


PathId = Annotated[
    int,
    AfterValidator(_existing_id),
    Path(
        description=f"Row id, 1..{MAX_ID}; any other integer names nothing (404).",
        json_schema_extra={"minimum": 1, "maximum": MAX_ID},
    ),
]
PAGE_MAX = 200
OFFSET_MAX = 10**9
Limit = Annotated[int, Query(ge=1, le=PAGE_MAX, description=f"Page size, 1..{PAGE_MAX}.")]
Offset = Annotated[int, Query(ge=0, le=OFFSET_MAX, description="Items to skip.")]
# Free-text query filters (names, ids, search text): bounded so the document states the limit.
Filter = Annotated[str | None, Query(max_length=200)]


def ctx(request: Request) -> Any:
    """The application context (settings, database, vault cache)."""
    return request.app.state.ctx


async def read_body(request: Request) -> bytes:
    """The request body, refused with 413 once it passes the limit (checked while streaming)."""
    limit = request.scope.get("state", {}).get("body_limit", ctx(request).settings.max_json_bytes)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "body_too_large", f"body over {limit} bytes", {"limit": limit})
        chunks.append(chunk)
    return b"".join(chunks)


def parse_model(model: type[M], raw: bytes) -> M:
    """Parse and validate a JSON body: 400 when it is not JSON, 422 when it does not fit the model."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as e:
        errors = e.errors(include_url=False, include_input=False)
        if any(err["type"] in ("json_invalid", "json_type") for err in errors):
            raise ApiError(400, "malformed_json", "the body is not valid JSON") from None
        details = [
            {"loc": [str(x) for x in err["loc"]][:6], "msg": err["msg"], "type": err["type"]}
            for err in errors[:10]
        ]
        raise ApiError(422, "invalid_body", _summary(details), {"errors": details}) from None


def _summary(details: list[dict[str, Any]]) -> str:
    first = details[0] if details else {"loc": [], "msg": "invalid"}
    return f"{'.'.join(first['loc']) or 'body'}: {first['msg']}"


async def json_body(request: Request, model: type[M]) -> M:
    """Read, bound and validate a JSON request body."""
    return parse_model(model, await read_body(request))


def body_doc(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a JSON body that a route parses itself."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": model.model_json_schema(ref_template="#/components/schemas/{model}")
                }
            },
        }
    }


def json_response(model: BaseModel | list[Any], status: int = 200) -> Response:
    """A JSON response from a model (or a list of models), skipping FastAPI's re-validation."""
    if isinstance(model, list):
        body = b"[" + b",".join(m.model_dump_json().encode() for m in model) + b"]"
    else:
        body = model.model_dump_json().encode()
    return Response(body, status_code=status, media_type="application/json")


def page_bounds(limit: int, offset: int) -> tuple[int, int]:
    """Validated page size (1-200) and offset (>= 0); routes declare them as :data:`Limit` and
    :data:`Offset` (checked and documented by FastAPI), this is the second line for direct callers."""
    if not 1 <= limit <= PAGE_MAX:
        raise ApiError(422, "invalid_query", "limit must be between 1 and 200")
    if not 0 <= offset <= OFFSET_MAX:
        raise ApiError(422, "invalid_query", "offset must be between 0 and 10^9")
    return limit, offset

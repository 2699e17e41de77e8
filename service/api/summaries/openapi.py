"""The request body of `POST /v1/summaries` in the OpenAPI schema.

The handler reads its body itself (the queue and the caller's quota are checked before a byte is read),
so Litestar cannot see it; this describes its three forms, JSON, text and multipart, with their bounds,
so clients and schemathesis see and fuzz them. The JSON schema comes from msgspec with its definitions
inlined: Litestar replaces the document's component schemas with those of its own registry.
"""

from dataclasses import dataclass
from typing import Any

import msgspec
from litestar.enums import ParamType
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, Parameter, RequestBody, Schema

from recursum.schemas.jobs import SummaryCreate


def _inlined(schema: Any, definitions: dict[str, Any]) -> Any:
    """`schema` with every `$ref` to `definitions` replaced by the definition (these have no cycles)."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _inlined(definitions[schema["$ref"].rpartition("/")[2]], definitions)
        return {key: _inlined(value, definitions) for key, value in schema.items() if key != "$defs"}
    if isinstance(schema, list):
        return [_inlined(value, definitions) for value in schema]
    return schema


_JSON_SCHEMA = msgspec.json.schema(SummaryCreate)
SUBMISSION_SCHEMA = _inlined(_JSON_SCHEMA, _JSON_SCHEMA["$defs"])
_MULTIPART_SCHEMA = {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary"},
                   "title": SUBMISSION_SCHEMA["properties"]["title"],
                   "options": {"type": "string", "contentMediaType": "application/json",
                               "description": "SummaryOptions as JSON"}},
}


@dataclass
class SubmissionOperation(Operation):
    def __post_init__(self) -> None:
        self.request_body = RequestBody(required=True, content={
            "application/json": OpenAPIMediaType(schema=SUBMISSION_SCHEMA),  # type: ignore[arg-type]
            "text/plain": OpenAPIMediaType(schema={"type": "string",  # type: ignore[arg-type]
                                                   "description": "the document; `?title=` names it"}),
            "multipart/form-data": OpenAPIMediaType(schema=_MULTIPART_SCHEMA),  # type: ignore[arg-type]
        })
        self.parameters = [*(self.parameters or []), Parameter(
            name="title", param_in=ParamType.QUERY, required=False,
            schema=Schema(type=OpenAPIType.STRING, max_length=512),
            description="the document's title, for a text/plain body")]

"""Schemathesis hooks for the OpenAPI fuzz test (crates/framehouse/tests/process.rs): a
serializer for tus's body type, `application/offset+octet-stream`, sent as raw bytes."""

import schemathesis
from schemathesis.transport.serialization import serialize_binary


@schemathesis.serializer("application/offset+octet-stream")
def offset_octet_stream(ctx, value):
    return {"data": serialize_binary(value)}

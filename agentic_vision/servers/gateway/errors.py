"""Errors in the shape the Gemini API uses: ``{"error": {"code", "message", "status"}}``."""

from __future__ import annotations

from starlette.responses import JSONResponse

STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
          405: "INVALID_ARGUMENT", 408: "DEADLINE_EXCEEDED", 409: "ALREADY_EXISTS", 413: "INVALID_ARGUMENT",
          429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL", 501: "UNIMPLEMENTED",
          502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


class GatewayError(Exception):
    """A request the gateway answers with an error; ``message`` says what to do."""

    def __init__(self, code: int, message: str, status: str | None = None, *,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code, self.message = code, message
        self.status = status or STATUS.get(code, "UNKNOWN")
        self.retry_after = retry_after  # seconds, sent as Retry-After (429 and 503)

    def payload(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "status": self.status}}

    def response(self) -> JSONResponse:
        headers = {"retry-after": str(max(1, round(self.retry_after)))} if self.retry_after is not None else None
        return JSONResponse(self.payload(), status_code=self.code, headers=headers)


def bad_request(message: str) -> GatewayError:
    return GatewayError(400, message)

"""CKAN's action errors, so our Action API fails the way CKAN clients (``ckanapi``) expect.

Each error knows its HTTP status and how CKAN renders it in the ``error`` member of the
response envelope (``ckan/views/api.py``): the ``__type`` strings are what clients switch on.
"""

from __future__ import annotations

from typing import Any


class ActionError(Exception):
    """Base of every error an action can raise."""

    status = 500
    type_name = "Internal Server Error"

    def error_dict(self) -> dict[str, Any]:
        return {"__type": self.type_name, "message": "Internal Server Error"}


class ValidationError(ActionError):
    """Bad parameters: ``{"field": ["message"], "__type": "Validation Error"}`` with 409."""

    status = 409
    type_name = "Validation Error"

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__(repr(errors))

    def error_dict(self) -> dict[str, Any]:
        return {**self.errors, "__type": self.type_name}


class NotFound(ActionError):
    """Unknown dataset, resource, organization or group: 404, message ``Not found[: detail]``."""

    status = 404
    type_name = "Not Found Error"

    def __init__(self, detail: str = "") -> None:
        self.detail = detail
        super().__init__(detail)

    def error_dict(self) -> dict[str, Any]:
        message = "Not found" + (f": {self.detail}" if self.detail else "")
        return {"__type": self.type_name, "message": message}


class NotAuthorized(ActionError):
    """Write actions on this read-only catalogue: 403, message ``Access denied[: detail]``."""

    status = 403
    type_name = "Authorization Error"

    def __init__(self, detail: str = "") -> None:
        self.detail = detail
        super().__init__(detail)

    def error_dict(self) -> dict[str, Any]:
        message = "Access denied" + (f": {self.detail}" if self.detail else "")
        return {"__type": self.type_name, "message": message}


class SearchQueryError(ActionError):
    """A query the search engine cannot run (bad ``q``/``fq``/``sort``): 400.

    CKAN formats the message as ``'Search Query is invalid: %r' % e.args``; we keep that, so
    ``ckanapi`` recovers the same text."""

    status = 400
    type_name = "Search Query Error"

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)

    def error_dict(self) -> dict[str, Any]:
        return {"__type": self.type_name, "message": f"Search Query is invalid: {self.detail!r}"}


class BadRequest(ActionError):
    """Unknown action or undecodable body. CKAN answers 400 with a bare JSON string (no
    envelope), e.g. ``"Bad request - Action name not known: foo"``."""

    status = 400
    type_name = "Bad Request"

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)

    @property
    def body(self) -> str:
        return f"Bad request - {self.detail}"

    def error_dict(self) -> dict[str, Any]:
        return {"__type": self.type_name, "message": self.body}

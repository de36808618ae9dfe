"""How every API route that edits a course runs: checked against ``If-Match`` and
applied once per ``Idempotency-Key``.

- ``If-Match: "<revision>"`` (the ``ETag`` of ``GET /api/courses/{id}`` or of the
  last edit's answer): the edit is refused with 412 when the course has changed
  since. Without it the edit applies to whatever is current (scripts that do not
  care keep working).
- ``Idempotency-Key: <any unique text>``: the answer is saved with the edit, in
  its transaction; the same key sent again gets that answer again (same status,
  same body) instead of a second edit. A key reused for a different request is
  refused with 409.

Every answer of an edit carries the course's new revision as its ``ETag``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError

from course_app.api.deps import CurrentUser
from course_app.db import session_scope
from course_app.errors import InvalidInput, Stale
from course_app.models import User
from course_app.services import idempotency
from course_app.services.ordering import REVISION

EDIT_HEADERS = "Send `If-Match` with the course's ETag to refuse the edit (412) if the course changed since."
IF_MATCH_RE = re.compile(r'^(?:W/)?"?(\d{1,18})"?$')


class Replayed(Exception):
    """The saved answer of a request already applied under the same key."""

    def __init__(self, status_code: int, body: str) -> None:
        self.status_code, self.body = status_code, body

    def response(self) -> Response:
        return Response(self.body or None, status_code=self.status_code,
                        media_type="application/json" if self.body else None,
                        headers={"Idempotent-Replayed": "true"})


def parse_if_match(value: str | None) -> int | None:
    if value is None or value.strip() == "*":
        return None
    match = IF_MATCH_RE.match(value.strip())
    if not match:
        raise InvalidInput("'If-Match' must be the course's revision as sent in its ETag, for example \"12\".")
    return int(match.group(1))


@dataclass(frozen=True)
class Edit:
    user: User
    revision: int | None
    key: str | None
    fingerprint: str


async def edit_options(request: Request, user: CurrentUser) -> Edit:
    revision = parse_if_match(request.headers.get("if-match"))
    key = idempotency.clean_key(request.headers.get("idempotency-key"))
    fingerprint = ""
    if key is not None:
        fingerprint = idempotency.fingerprint(request.method, request.url.path, await request.body())
        found = await asyncio.to_thread(_saved, user.id, key, fingerprint)
        if found is not None:
            raise found
    return Edit(user=user, revision=revision, key=key, fingerprint=fingerprint)


EditDep = Annotated[Edit, Depends(edit_options)]


def _saved(user_id: int, key: str, fingerprint: str) -> Replayed | None:
    with session_scope() as db:
        found = idempotency.saved(session=db, user_id=user_id, key=key, request_fingerprint=fingerprint)
        return Replayed(found.status_code, found.body) if found is not None else None


def _apply(edit: Edit, fn: Callable[..., Any], present: Callable[[Any], BaseModel | None], status_code: int,
           checked: bool, kwargs: dict[str, Any]) -> tuple[Any, Response]:
    with session_scope() as db:
        if checked:
            kwargs = {"revision": edit.revision, **kwargs}
        result = fn(session=db, user=edit.user, **kwargs)
        model = present(result)
        body = model.model_dump_json() if model is not None else ""
        if edit.key is not None:
            idempotency.save(session=db, user_id=edit.user.id, key=edit.key, request_fingerprint=edit.fingerprint,
                             status_code=status_code, body=body)
        revision = db.info.get(REVISION)
    headers = {"ETag": f'"{revision}"'} if revision is not None else None
    return result, Response(body or None, status_code=status_code,
                            media_type="application/json" if body else None, headers=headers)


async def apply_edit(edit: Edit, fn: Callable[..., Any], *, present: Callable[[Any], BaseModel | None] = lambda _: None,
                     status_code: int = 200, checked: bool = True, **kwargs: Any) -> tuple[Any, Response]:
    """Run the service ``fn`` in one transaction (with the ``If-Match`` revision when
    ``checked``), save the answer under the idempotency key in the same transaction,
    and return (the service's result, the answer)."""
    try:
        return await asyncio.to_thread(_apply, edit, fn, present, status_code, checked, kwargs)
    except (IntegrityError, Stale):
        # The same key's first request committed while this one ran (this one then
        # found the revision moved, or the key taken): answer as the first did.
        found = await asyncio.to_thread(_saved, edit.user.id, edit.key, edit.fingerprint) if edit.key else None
        if found is None:
            raise
        raise found from None

"""Personal API tokens: list, create (the value is shown once) and revoke."""

from __future__ import annotations

from fastapi import APIRouter, Response
from course_app.api.deps import CurrentUser, DbSession
from course_app.api.schemas import TokenCreate, TokenCreated, TokenPublic
from course_app.services.api_tokens import create_api_token, list_api_tokens, revoke_api_token

router = APIRouter(prefix="/api/tokens", tags=["tokens"])


@router.get("", summary="List your API tokens (never their values)")
def list_tokens(user: CurrentUser, db: DbSession) -> list[TokenPublic]:
    return [TokenPublic.of(row) for row in list_api_tokens(session=db, user=user)]


@router.post("", status_code=201, summary="Create an API token; its value is returned only here")
def create_token(body: TokenCreate, user: CurrentUser, db: DbSession) -> TokenCreated:
    row, plain = create_api_token(session=db, user=user, name=body.name)
    db.commit()
    return TokenCreated(**TokenPublic.of(row).model_dump(), token=plain)


@router.delete("/{token_id}", status_code=204, summary="Revoke an API token")
def revoke_token(token_id: int, user: CurrentUser, db: DbSession) -> Response:
    revoke_api_token(session=db, user=user, token_id=token_id)
    db.commit()
    return Response(status_code=204)

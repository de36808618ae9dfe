"""Personal API tokens for scripts: create (the value is shown once), list and
revoke. How a token is hashed and recognised on a request is auth/tokens.py."""

from __future__ import annotations

from sqlmodel import Session, select

from course_app.auth.tokens import API_TOKEN_PREFIX, new_token, token_hash
from course_app.errors import InvalidInput, NotFound
from course_app.models import TOKEN_NAME_MAX, ApiToken, User
from course_app.services.validation import clean_text

ID_MAX = 2**31 - 1  # INTEGER primary keys; larger ids cannot exist (and overflow the driver)


def create_api_token(*, session: Session, user: User, name: str) -> tuple[ApiToken, str]:
    """Create a token; the plain value is returned once and never stored."""
    name = (name or "").strip()
    if not name:
        raise InvalidInput("Give the token a name, for example the script that will use it.")
    if len(name) > TOKEN_NAME_MAX:
        raise InvalidInput(f"Token names are at most {TOKEN_NAME_MAX} characters.")
    name = clean_text(name, field="Token name", max_length=TOKEN_NAME_MAX)
    plain = API_TOKEN_PREFIX + new_token()
    row = ApiToken(user_id=user.id, name=name, token_hash=token_hash(plain), prefix=plain[:10])
    session.add(row)
    session.flush()
    return row, plain


def list_api_tokens(*, session: Session, user: User) -> list[ApiToken]:
    return list(
        session.exec(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.created_at, ApiToken.id))
    )


def revoke_api_token(*, session: Session, user: User, token_id: int) -> None:
    row = session.get(ApiToken, token_id) if isinstance(token_id, int) and 0 < token_id <= ID_MAX else None
    if row is None or row.user_id != user.id:
        raise NotFound("That token does not exist or was already revoked.")
    session.delete(row)

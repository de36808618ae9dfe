"""The settings page's store: the instructor's personal API tokens."""

from __future__ import annotations

import dataclasses

import reflex as rx

from course_app.models import User
from course_app.services import api_tokens
from course_app.state.session import call_service, requires_user, user_message


@dataclasses.dataclass
class TokenRow:
    id: int
    name: str
    prefix: str
    created: str
    last_used: str


def _when(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "never"


class TokensState(rx.State):
    tokens: list[TokenRow] = []
    loaded: bool = False
    error: str = ""
    # The value of a token just created, shown once to its owner and cleared on "Done".
    new_token: str = ""

    async def _reload(self, user: User) -> None:
        rows = await call_service(api_tokens.list_api_tokens, user=user)
        self.tokens = [
            TokenRow(id=r.id, name=r.name, prefix=r.prefix, created=_when(r.created_at), last_used=_when(r.last_used_at))
            for r in rows
        ]

    @rx.event
    @requires_user
    async def load(self, user: User):
        self.new_token = ""
        try:
            await self._reload(user)
            self.error = ""
        except Exception as exc:
            self.error = user_message(exc)
        self.loaded = True

    @rx.event
    @requires_user
    async def create_token(self, user: User, form_data: dict):
        name = form_data.get("name") if isinstance(form_data, dict) else None
        try:
            _, plain = await call_service(api_tokens.create_api_token, user=user, name=name)
            self.new_token = plain
            self.error = ""
        except Exception as exc:
            self.error = user_message(exc)
        await self._reload(user)

    @rx.event
    def clear_new_token(self):
        self.new_token = ""

    @rx.event
    @requires_user
    async def revoke_token(self, user: User, token_id: int):
        if not isinstance(token_id, int) or isinstance(token_id, bool):
            self.error = "That token does not exist."
            return
        self.tokens = [row for row in self.tokens if row.id != token_id]
        yield
        try:
            await call_service(api_tokens.revoke_api_token, user=user, token_id=token_id)
            self.error = ""
        except Exception as exc:
            self.error = user_message(exc)
        await self._reload(user)

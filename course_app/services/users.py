"""Accounts: sign-up, log-in and the CLI's user management."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, func, select

from course_app.auth.passwords import hash_password, verify_password
from course_app.errors import Conflict, InvalidInput, Unauthorized
from course_app.models import EMAIL_MAX, ROLES, User
from course_app.services.validation import EMAIL_RE, has_unsafe_characters

PASSWORD_MIN = 8
PASSWORD_MAX = 1024
BAD_CREDENTIALS = "Wrong e-mail or password."
COURSE_CREATOR_ROLES = frozenset({"instructor", "admin"})


def normalise_email(email: object) -> str:
    if not isinstance(email, str):
        raise InvalidInput("Enter your e-mail address.")
    email = email.strip().lower()
    if not email:
        raise InvalidInput("Enter your e-mail address.")
    if len(email) > EMAIL_MAX or not EMAIL_RE.match(email) or has_unsafe_characters(email):
        raise InvalidInput("That does not look like an e-mail address.")
    return email


def check_password_rules(password: object) -> str:
    if not isinstance(password, str) or len(password) < PASSWORD_MIN:
        raise InvalidInput(f"Choose a password of at least {PASSWORD_MIN} characters.")
    if len(password) > PASSWORD_MAX:
        raise InvalidInput(f"Passwords are at most {PASSWORD_MAX} characters.")
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in password):
        raise InvalidInput("That password contains characters that cannot be used.")
    return password


def create_user(*, session: Session, email: str, password: str, role: str = "instructor") -> User:
    email = normalise_email(email)
    password = check_password_rules(password)
    if role not in ROLES:
        raise InvalidInput(f"Role must be one of: {', '.join(ROLES)}.")
    if session.exec(select(User.id).where(func.lower(User.email) == email)).first() is not None:
        raise Conflict("An account with that e-mail already exists. Log in instead.")
    user = User(email=email, password_hash=hash_password(password), role=role)
    session.add(user)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict("An account with that e-mail already exists. Log in instead.") from None
    return user


def authenticate(*, session: Session, email: object, password: object) -> User:
    """The user for these credentials; one message whether the e-mail or the password is wrong."""
    try:
        email = normalise_email(email)
    except InvalidInput:
        raise Unauthorized(BAD_CREDENTIALS) from None
    user = session.exec(select(User).where(User.email == email)).first()
    ok = verify_password(user.password_hash if user else None, password if isinstance(password, str) else "")
    if user is None or not ok:
        raise Unauthorized(BAD_CREDENTIALS)
    return user


def get_user_by_email(*, session: Session, email: str) -> User | None:
    return session.exec(select(User).where(User.email == normalise_email(email))).first()


def can_create_courses(user: User) -> bool:
    return user.role in COURSE_CREATOR_ROLES

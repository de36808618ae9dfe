"""Sign-up, log-in (password, or a Supabase access token) and log-out.

The pages post plain HTML forms here (no JavaScript needed) and get a redirect;
scripts send JSON and get JSON. Either way the session token travels only in an
HttpOnly, SameSite=Lax cookie.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from urllib.parse import urlencode

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from course_app.api.body_limit import BodyTooLarge
from course_app.api.deps import CurrentUser, DbSession, check_csrf, client_ip, enforce_rate_limit_async
from course_app.api.schemas import Credentials, SupabaseSignIn, UserPublic
from course_app.auth import supabase
from course_app.auth.session_events import sessions_ended
from course_app.auth.tokens import (SESSION_COOKIE, create_session, end_all_sessions, end_session, notice_signature,
                                    safe_next)
from course_app.errors import DomainError, InvalidInput, NotFound
from course_app.services import users
from course_app.settings import get_settings

router = APIRouter(prefix="/api/auth", tags=["auth"])

AFTER_LOGIN = "/dashboard"

# Every route here does its database work in a worker thread, never on the event loop
# that serves the process's other requests and sockets; above all the password hash
# of a log-in or sign-up (argon2: slow on purpose, 64 MiB each). Hashes take threads
# of their own, at most one a core and four at once (more would add no speed), so a
# burst of log-ins neither holds a gigabyte of hashing memory nor takes the threads
# every other route waits for.
PASSWORD_CHECKS_AT_ONCE = min(4, os.cpu_count() or 1)
_password_work = anyio.CapacityLimiter(PASSWORD_CHECKS_AT_ONCE)


def _is_form(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data"))


async def _body(request: Request, model: type[Credentials] | type[SupabaseSignIn], fields: str):
    """Read the request's fields from a form (browser) or JSON (script)."""
    if _is_form(request):
        form = await request.form()
        return model(**{name: value if isinstance(value := form.get(name), str) else ""
                        for name in model.model_fields})
    try:
        return model.model_validate(await request.json())
    except BodyTooLarge:
        raise
    except Exception:
        raise InvalidInput(f"Send {fields} as JSON or as a form.") from None


async def _credentials(request: Request) -> tuple[Credentials, bool]:
    """Read credentials from a form (browser) or JSON (script); returns (creds, is_form)."""
    return await _body(request, Credentials, "'email' and 'password'"), _is_form(request)


def _set_session_cookie(response: Response, token: str) -> None:
    settings = get_settings()
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.session_lifetime_hours * 3600,
        httponly=True,
        samesite="lax",
        secure=settings.is_production,
        path="/",
    )


def _form_error(page: str, error: DomainError, email: str, next_path: str) -> RedirectResponse:
    query = urlencode({"message": str(error), "sig": notice_signature(str(error)), "email": email, "next": next_path})
    return RedirectResponse(f"{page}?{query}", status_code=303)


async def _enter(request: Request, db: DbSession, *, signup: bool) -> Response:
    settings = get_settings()
    is_form = _is_form(request)
    page = "/signup" if signup else "/login"
    email_for_form = next_path = ""
    try:
        check_csrf(request)
        creds, is_form = await _credentials(request)
        email_for_form = creds.email.strip()[:254]
        next_path = safe_next(creds.next)
        if signup:
            await enforce_rate_limit_async(settings.signup_rate_limit, client_ip(request), what="sign-up")
        else:
            # Per address (whatever the e-mail), then per address and e-mail.
            await enforce_rate_limit_async(settings.login_ip_rate_limit, "ip", client_ip(request), what="log-in")
            await enforce_rate_limit_async(
                settings.login_rate_limit, client_ip(request), creds.email.strip().lower()[:254], what="log-in"
            )
        account = users.create_user if signup else users.authenticate

        def enter() -> Response:
            user = account(session=db, email=creds.email, password=creds.password)
            return _signed_in(db, user, is_form=is_form, next_path=next_path, status_code=201 if signup else 200)

        return await anyio.to_thread.run_sync(enter, limiter=_password_work)
    except DomainError as error:
        if is_form:
            return _form_error(page, error, email_for_form, next_path)
        raise


def _signed_in(db: DbSession, user, *, is_form: bool, next_path: str, status_code: int = 200) -> Response:
    """Start a browser session for the user: the redirect (forms) or the user (JSON), with its cookie."""
    token, _ = create_session(session=db, user=user)
    db.commit()
    if is_form:
        response: Response = RedirectResponse(next_path or AFTER_LOGIN, status_code=303)
    else:
        response = JSONResponse(UserPublic.of(user).model_dump(), status_code=status_code)
    _set_session_cookie(response, token)
    return response


@router.post("/signup", summary="Create an instructor account and log in")
async def signup(request: Request, db: DbSession) -> Response:
    return await _enter(request, db, signup=True)


@router.post("/login", summary="Log in with e-mail and password")
async def login(request: Request, db: DbSession) -> Response:
    return await _enter(request, db, signup=False)


@router.post("/supabase", summary="Log in with a Supabase access token")
async def supabase_sign_in(request: Request, db: DbSession) -> Response:
    """The log-in page posts the access token Supabase's hosted sign-in returned (a
    form, answered with a redirect); scripts send ``{"access_token": ...}`` as JSON.
    Either way the answer carries our own session cookie, as a password log-in does."""
    settings = get_settings()
    is_form = _is_form(request)
    next_path = ""
    try:
        check_csrf(request)
        if not settings.supabase_enabled:
            raise NotFound("Supabase sign-in is not configured on this server.")
        await enforce_rate_limit_async(settings.login_ip_rate_limit, "ip", client_ip(request), what="log-in")
        body = await _body(request, SupabaseSignIn, "'access_token'")
        next_path = safe_next(body.next)

        def enter() -> Response:
            claims = supabase.verify_access_token(body.access_token)
            return _signed_in(db, supabase.user_for_claims(session=db, claims=claims), is_form=is_form,
                              next_path=next_path)

        return await run_in_threadpool(enter)
    except DomainError as error:
        if is_form:
            return _form_error("/login", error, "", next_path)
        raise


def _end_and_commit(db: Session, end: Callable[..., object], **kwargs: object) -> None:
    """``end`` one session or all of a user's, and commit (in a worker thread)."""
    end(session=db, **kwargs)
    db.commit()


def _logged_out(request: Request) -> Response:
    """The answer to a log-out: the cookie deleted, JSON for scripts, the log-in page for forms.
    Open tabs of the ended sessions are reset by the socket watcher, woken here."""
    sessions_ended()
    wants_json = "application/json" in request.headers.get("accept", "")
    response: Response = Response(status_code=204) if wants_json else RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=get_settings().is_production)
    return response


@router.post("/logout", summary="End this browser session")
async def logout(request: Request, db: DbSession) -> Response:
    check_csrf(request)
    await run_in_threadpool(_end_and_commit, db, end_session, token=request.cookies.get(SESSION_COOKIE))
    return _logged_out(request)


@router.post("/logout-everywhere", summary="End every browser session of the current user (API tokens stay)")
async def logout_everywhere(request: Request, user: CurrentUser, db: DbSession) -> Response:
    check_csrf(request)
    await run_in_threadpool(_end_and_commit, db, end_all_sessions, user_id=user.id)
    return _logged_out(request)


@router.get("/me", summary="The current user", response_model=UserPublic)
def me(user: CurrentUser) -> UserPublic:
    return UserPublic.of(user)

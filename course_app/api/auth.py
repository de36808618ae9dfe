"""Sign-up, log-in and log-out.

The pages post plain HTML forms here (no JavaScript needed) and get a redirect;
scripts send JSON and get JSON. Either way the session token travels only in an
HttpOnly, SameSite=Lax cookie.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from course_app.api.body_limit import BodyTooLarge
from course_app.api.deps import CurrentUser, DbSession, check_csrf, client_ip, enforce_rate_limit
from course_app.api.schemas import Credentials, UserPublic
from course_app.auth.tokens import SESSION_COOKIE, create_session, end_session, notice_signature, safe_next
from course_app.auth.session_events import sessions_ended
from course_app.auth.tokens import (SESSION_COOKIE, create_session, end_all_sessions, end_session, notice_signature,
                                    safe_next)
from course_app.errors import DomainError, InvalidInput
from course_app.services import users
from course_app.settings import get_settings

router = APIRouter(prefix="/api/auth", tags=["auth"])

AFTER_LOGIN = "/dashboard"


async def _credentials(request: Request) -> tuple[Credentials, bool]:
    """Read credentials from a form (browser) or JSON (script); returns (creds, is_form)."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        fields = {name: form.get(name) for name in ("email", "password", "next")}
        return Credentials(**{k: v if isinstance(v, str) else "" for k, v in fields.items()}), True
    try:
        body = await request.json()
        return Credentials.model_validate(body), False
    except BodyTooLarge:
        raise
    except Exception:
        raise InvalidInput("Send 'email' and 'password' as JSON or as a form.") from None


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
    is_form = request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    )
    page = "/signup" if signup else "/login"
    email_for_form = next_path = ""
    try:
        check_csrf(request)
        creds, is_form = await _credentials(request)
        email_for_form = creds.email.strip()[:254]
        next_path = safe_next(creds.next)
        if signup:
            enforce_rate_limit(settings.signup_rate_limit, client_ip(request), what="sign-up")
            user = users.create_user(session=db, email=creds.email, password=creds.password)
        else:
            enforce_rate_limit(
                settings.login_rate_limit, client_ip(request), creds.email.strip().lower()[:254], what="log-in"
            )
            user = users.authenticate(session=db, email=creds.email, password=creds.password)
        token, _ = create_session(session=db, user=user)
        db.commit()
    except DomainError as error:
        if is_form:
            return _form_error(page, error, email_for_form, next_path)
        raise
    if is_form:
        response: Response = RedirectResponse(next_path or AFTER_LOGIN, status_code=303)
    else:
        response = JSONResponse(UserPublic.of(user).model_dump(), status_code=201 if signup else 200)
    _set_session_cookie(response, token)
    return response


@router.post("/signup", summary="Create an instructor account and log in")
async def signup(request: Request, db: DbSession) -> Response:
    return await _enter(request, db, signup=True)


@router.post("/login", summary="Log in with e-mail and password")
async def login(request: Request, db: DbSession) -> Response:
    return await _enter(request, db, signup=False)


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
    end_session(session=db, token=request.cookies.get(SESSION_COOKIE))
    db.commit()
    return _logged_out(request)


@router.post("/logout-everywhere", summary="End every browser session of the current user (API tokens stay)")
async def logout_everywhere(request: Request, user: CurrentUser, db: DbSession) -> Response:
    check_csrf(request)
    end_all_sessions(session=db, user_id=user.id)
    db.commit()
    return _logged_out(request)


@router.get("/me", summary="The current user", response_model=UserPublic)
def me(user: CurrentUser) -> UserPublic:
    return UserPublic.of(user)

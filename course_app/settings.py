"""Application settings: one pydantic-settings class, read from the environment
(prefix ``COURSE_``) and an optional ``.env`` file.

Start-up calls :func:`load_settings_or_exit`, which turns any invalid or missing
setting into a one-line message that names it.
"""

from __future__ import annotations

import os
import secrets
import sys
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from typing_extensions import Annotated

ENV_PREFIX = "COURSE_"
GIB = 1024**3

# Secrets that must never be used outside local development.
PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "changethis", "secret", "please-change", "placeholder", "xxx"}
)
MIN_SECRET_LENGTH = 32


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    environment: Literal["development", "production"] = "development"
    data_dir: Path = Path("data")
    database_url: str = ""
    storage_backend: Literal["local", "b2"] = "local"
    storage_dir: Path | None = None
    b2_key_id: str = ""
    b2_application_key: str = ""
    b2_bucket_name: str = ""
    max_upload_bytes: int = Field(default=5 * GIB, gt=0)
    # Resumable uploads: part size (empty: the storage's recommendation), the
    # instructor's storage quota, and when an untouched upload counts as abandoned.
    upload_chunk_bytes: int | None = Field(default=None, ge=64 * 1024)
    quota_bytes: int = Field(default=500 * GIB, gt=0)
    upload_stale_hours: float = Field(default=24, gt=0)
    # Deleted videos and chapters stay in the course trash this long, then go for good.
    trash_days: int = Field(default=30, gt=0, le=3650)
    # Processing (services/processing.py): the job queue (empty: a SQLite file in the
    # data folder; redis://... for Redis), how many workers the app starts itself (0:
    # run `course-app worker` apart), a worker's lease (renewed by heartbeats), how
    # long a queued job may wait for a worker, and how many times a job is claimed
    # before its video fails.
    queue_url: str = ""
    embedded_workers: int = Field(default=1, ge=0, le=16)
    # Processing and the bytes of uploads run at a lower CPU priority than the app's
    # requests and editor events (Unix niceness, 0..19; 0 leaves them equal), so an
    # editor stays responsive while a machine verifies and probes fifty uploads.
    worker_nice: int = Field(default=10, ge=0, le=19)
    storage_nice: int = Field(default=5, ge=0, le=19)
    processing_lease_seconds: float = Field(default=60, ge=1)
    processing_queue_wait_seconds: float = Field(default=600, ge=1)
    processing_max_attempts: int = Field(default=3, ge=1, le=100)
    # Playback (services/playback.py): how long a signed link to a video or thumbnail
    # works, and the requests one address may make for media through such links.
    playback_link_seconds: int = Field(default=900, ge=60, le=7 * 24 * 3600)
    media_rate_limit: str = "1200/minute"
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://localhost:3000", "http://127.0.0.1:3000"]
    )
    session_lifetime_hours: int = Field(default=24 * 14, gt=0, le=24 * 365)
    secret_key: str = ""
    login_rate_limit: str = "10/minute"  # per client address and e-mail
    login_ip_rate_limit: str = "30/minute"  # per client address, whatever the e-mail (Supabase sign-ins too)
    # Requests with missing or invalid credentials (a bogus token, an ended session), per client address.
    anonymous_rate_limit: str = "60/minute"
    signup_rate_limit: str = "20/hour"
    api_rate_limit: str = "300/minute"
    upload_rate_limit: str = "60/minute"
    part_rate_limit: str = "3000/minute"
    # Duplicate look-ups (POST /api/videos/duplicates): one per file chosen.
    lookup_rate_limit: str = "120/minute"
    # Events one socket (one tab's connection) may send, whatever they are.
    socket_event_rate_limit: str = "40/second"
    # Open sockets per client IP (in every app process together when redis_url is set,
    # else per process), and how long the States of a tab that never logged in are
    # kept once its socket closed.
    socket_connections_per_ip: int = Field(default=40, gt=0)
    # With Redis: how long an open socket's place in its IP's count lasts unless its
    # process renews it (a process that died frees its places within this time).
    socket_claim_seconds: float = Field(default=30, ge=1, le=3600)
    anonymous_state_seconds: float = Field(default=60, gt=0)
    # Reverse proxies in front of the app whose X-Forwarded-For is believed (0: the
    # client is the socket peer; 1: one proxy, nginx or a load balancer, ...).
    trusted_proxy_hops: int = Field(default=0, ge=0, le=10)
    # Redis (redis://...): rate limits shared by every app process and machine
    # (empty: each process counts in its own memory), under this key prefix; also
    # Reflex's state manager and the upkeep lock under `serve` (below).
    redis_url: str = ""
    rate_limit_key_prefix: str = Field(default="course-limits", min_length=1, max_length=100)
    # Supabase sign-in (auth/supabase.py), off while supabase_url is empty. Access
    # tokens are verified here: ES256/RS256 against the project's JWKS (default
    # <url>/auth/v1/.well-known/jwks.json, cached), HS256 only when the legacy JWT
    # secret is set. A new user's role: supabase_default_role, or the token's
    # app_metadata.role claim when it names one of ours ("" here: the claim is required).
    supabase_url: str = ""
    supabase_jwt_secret: str = ""
    supabase_jwks_url: str = ""
    supabase_audience: str = "authenticated"
    supabase_default_role: Literal["instructor", ""] = "instructor"
    supabase_jwks_cache_seconds: float = Field(default=600, gt=0)
    supabase_jwks_cooldown_seconds: float = Field(default=30, ge=0)
    # The provider of the log-in page's "Continue with ..." button (github, google ...;
    # empty: no button, tokens arrive from the project's own sign-in page).
    supabase_provider: str = Field(default="", pattern=r"^[a-z0-9_-]*$", max_length=40)
    # Strict-Transport-Security max-age, sent in production only (0: not sent).
    hsts_max_age_seconds: int = Field(default=2 * 365 * 24 * 3600, ge=0)
    # Production serving (course_app/serve.py): Redis for Reflex's state manager (so a
    # socket may reconnect to any worker or machine) and the upkeep lock; backend worker
    # processes per machine (more than one needs Redis); the address browsers use (the
    # reverse proxy's), built into the front end; JSON logs (default: on in production);
    # the bearer token that opens /api/metrics (empty: no metrics route); seconds
    # between two rounds of background upkeep (storage deletions, sweeps).
    web_workers: int = Field(default=1, ge=1, le=64)
    public_url: str = ""
    log_format: Literal["text", "json", ""] = ""
    metrics_token: str = ""
    upkeep_interval_seconds: float = Field(default=30, gt=0, le=3600)

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip().rstrip("/") for part in value.split(",") if part.strip()]
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _check_origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if not origin.startswith(("http://", "https://")):
                raise ValueError(f"{origin!r} is not an http(s) origin")
        return value

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value

    @field_validator("metrics_token")
    @classmethod
    def _check_metrics_token(cls, value: str) -> str:
        if value and (len(value) < 16 or value.strip().lower() in PLACEHOLDER_SECRETS):
            raise ValueError("set a random value of at least 16 characters, or leave it empty (no metrics)")
        return value

    @field_validator("queue_url")
    @classmethod
    def _check_queue_url(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be empty (a SQLite queue in the data folder) or a redis:// URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be empty (limits counted in each process) or a redis:// URL")
        return value

    @field_validator("supabase_url", "supabase_jwks_url")
    @classmethod
    def _check_supabase_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must be an https:// URL (http:// for a local test server)")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if value and not value.startswith(("sqlite://", "postgresql://", "postgresql+psycopg2://", "postgres://")):
            raise ValueError("must be a sqlite:// or postgresql:// URL")
        if value.startswith("postgres://"):
            # Supabase and Heroku hand out postgres://; SQLAlchemy wants postgresql://.
            value = "postgresql://" + value.removeprefix("postgres://")
        return value

    @field_validator("login_rate_limit", "login_ip_rate_limit", "anonymous_rate_limit", "signup_rate_limit",
                     "api_rate_limit", "upload_rate_limit", "part_rate_limit", "socket_event_rate_limit",
                     "media_rate_limit", "lookup_rate_limit")
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a rate limit such as '10/minute'") from exc
        return value

    @model_validator(mode="after")
    def _check_combination(self) -> Settings:
        if self.storage_backend == "b2":
            for name in ("b2_key_id", "b2_application_key", "b2_bucket_name"):
                if not getattr(self, name):
                    raise SettingsError(f"{ENV_PREFIX}{name.upper()}: required when storage_backend is b2")
        if (self.supabase_jwt_secret or self.supabase_jwks_url or self.supabase_provider) and not self.supabase_url:
            raise SettingsError(f"{ENV_PREFIX}SUPABASE_URL: required with the other Supabase settings")
        if self.supabase_jwt_secret and len(self.supabase_jwt_secret) < MIN_SECRET_LENGTH:
            raise SettingsError(f"{ENV_PREFIX}SUPABASE_JWT_SECRET: the project's JWT secret is at least "
                                f"{MIN_SECRET_LENGTH} characters (Project Settings, API)")
        if self.environment == "production":
            if self.secret_key.strip().lower() in PLACEHOLDER_SECRETS or len(self.secret_key) < MIN_SECRET_LENGTH:
                raise SettingsError(
                    f"{ENV_PREFIX}SECRET_KEY: set a random value of at least {MIN_SECRET_LENGTH} characters in production"
                )
            if not self.database_url:
                raise SettingsError(f"{ENV_PREFIX}DATABASE_URL: required in production")
        if self.web_workers > 1 and not self.redis_url:
            raise SettingsError(f"{ENV_PREFIX}WEB_WORKERS: more than one worker needs {ENV_PREFIX}REDIS_URL "
                                "(a tab's state must be reachable from every worker)")
        return self

    # Derived values -------------------------------------------------------

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'course_studio.db').resolve()}"

    @property
    def resolved_storage_dir(self) -> Path:
        return (self.storage_dir or self.data_dir / "storage").resolve()

    @property
    def resolved_queue_path(self) -> Path:
        return (self.data_dir / "queue.db").resolve()

    @property
    def supabase_enabled(self) -> bool:
        return bool(self.supabase_url)

    @property
    def supabase_issuer(self) -> str:
        return f"{self.supabase_url}/auth/v1"

    @property
    def resolved_supabase_jwks_url(self) -> str:
        return self.supabase_jwks_url or f"{self.supabase_issuer}/.well-known/jwks.json"

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def json_logs(self) -> bool:
        return self.log_format == "json" or (not self.log_format and self.is_production)

    def resolved_secret_key(self) -> str:
        """The configured secret, or (development only) one generated once and
        kept in the data folder so sessions survive restarts."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret_key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write a private temporary file, then link it into place: the key file
            # never exists half-written or readable by others, and the first of
            # several starting processes wins.
            temporary = path.with_name(f".secret_key.{os.getpid()}.{secrets.token_hex(4)}")
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(secrets.token_urlsafe(48))
            try:
                os.link(temporary, path)
            except FileExistsError:
                pass
            finally:
                temporary.unlink()
        return path.read_text(encoding="utf-8").strip()


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first.get("loc", ()) if part != "__root__")
    message = first.get("msg", "invalid value").removeprefix("Value error, ")
    if field:
        return f"{ENV_PREFIX}{field.upper()}: {message}"
    return message


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings; raises SettingsError naming the bad setting."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


def load_settings_or_exit() -> Settings:
    try:
        return get_settings()
    except SettingsError as exc:
        print(f"Configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None

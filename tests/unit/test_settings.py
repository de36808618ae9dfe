"""course_app/settings.py: defaults, URL rewriting, refusals that name the
setting, the start-up exit, and the generated development secret."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from course_app.settings import GIB, Settings, SettingsError, get_settings, load_settings_or_exit

COURSE_APP = Path(sys.executable).parent / "course-app"
GOOD_SECRET = "s3cr3t-" + "k" * 40
PG_URL = "postgresql://app:pw@db.example.com:5432/courses"


@pytest.fixture
def env(monkeypatch, tmp_path):
    """A clean environment: no COURSE_* variables, no .env file in the working
    directory, and an empty settings cache before and after the test."""
    for name in list(os.environ):
        if name.startswith("COURSE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def refusal() -> str:
    """The SettingsError message get_settings() raises for this environment."""
    get_settings.cache_clear()
    with pytest.raises(SettingsError) as caught:
        get_settings()
    return str(caught.value)


# Defaults -------------------------------------------------------------------


def test_defaults_use_sqlite_under_the_data_folder_and_local_storage(env, tmp_path):
    settings = Settings()

    assert settings.environment == "development"
    assert not settings.is_production
    assert settings.data_dir == Path("data")
    assert settings.resolved_database_url == f"sqlite:///{(tmp_path / 'data' / 'course_studio.db').resolve()}"
    assert settings.storage_backend == "local"
    assert settings.resolved_storage_dir == (tmp_path / "data" / "storage").resolve()
    assert settings.max_upload_bytes == 5 * GIB == 5 * 1024**3
    assert settings.login_rate_limit == "10/minute"


def test_data_dir_from_the_environment_moves_database_and_storage(env, tmp_path):
    env.setenv("COURSE_DATA_DIR", str(tmp_path / "elsewhere"))

    settings = get_settings()

    assert settings.resolved_database_url == f"sqlite:///{(tmp_path / 'elsewhere' / 'course_studio.db').resolve()}"
    assert settings.resolved_storage_dir == (tmp_path / "elsewhere" / "storage").resolve()


def test_a_dot_env_file_in_the_working_directory_is_read(env, tmp_path):
    (tmp_path / ".env").write_text("COURSE_MAX_UPLOAD_BYTES=1234\n", encoding="utf-8")

    assert get_settings().max_upload_bytes == 1234


def test_get_settings_is_cached_until_cleared(env):
    env.setenv("COURSE_MAX_UPLOAD_BYTES", "100")
    first = get_settings()
    env.setenv("COURSE_MAX_UPLOAD_BYTES", "200")

    assert get_settings() is first
    get_settings.cache_clear()
    assert get_settings().max_upload_bytes == 200


# Database URL ---------------------------------------------------------------


def test_postgres_scheme_is_rewritten_to_postgresql(env):
    env.setenv("COURSE_DATABASE_URL", "postgres://user:pw@db.supabase.co:5432/postgres")

    settings = get_settings()

    assert settings.database_url == "postgresql://user:pw@db.supabase.co:5432/postgres"
    assert settings.resolved_database_url == "postgresql://user:pw@db.supabase.co:5432/postgres"


@pytest.mark.parametrize("url", [PG_URL, "postgresql+psycopg2://u@h/db", "sqlite:////tmp/x.db"])
def test_supported_database_urls_are_kept(env, url):
    assert Settings(database_url=url).resolved_database_url == url


@pytest.mark.parametrize("url", ["mysql://x", "not a url", "http://db.example.com"])
def test_unsupported_database_url_is_refused_naming_the_setting(env, url):
    env.setenv("COURSE_DATABASE_URL", url)

    message = refusal()

    assert message.startswith("COURSE_DATABASE_URL:")
    assert "sqlite:// or postgresql://" in message


# Other refusals ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["COURSE_LOGIN_RATE_LIMIT", "COURSE_SIGNUP_RATE_LIMIT", "COURSE_API_RATE_LIMIT",
                                  "COURSE_LOGIN_IP_RATE_LIMIT", "COURSE_ANONYMOUS_RATE_LIMIT"])
@pytest.mark.parametrize("value", ["lots", "10/fortnight", ""])
def test_bad_rate_limit_is_refused_naming_the_setting(env, name, value):
    env.setenv(name, value)

    message = refusal()

    assert message.startswith(f"{name}:")
    assert "is not a rate limit" in message


def test_rate_limits_accept_several_windows(env):
    env.setenv("COURSE_LOGIN_RATE_LIMIT", "5/minute;100/hour")

    assert get_settings().login_rate_limit == "5/minute;100/hour"


@pytest.mark.parametrize(("name", "value", "words"), [
    ("COURSE_REDIS_URL", "http://redis:6379", "redis://"),
    ("COURSE_TRUSTED_PROXY_HOPS", "-1", "greater than or equal"),
    ("COURSE_SUPABASE_URL", "project.supabase.co", "https://"),
    ("COURSE_SUPABASE_DEFAULT_ROLE", "admin", "instructor"),
])
def test_bad_production_settings_are_refused_naming_them(env, name, value, words):
    env.setenv(name, value)
    message = refusal()
    assert message.startswith(f"{name}:") and words in message


def test_supabase_settings_need_the_project_url_and_a_real_secret(env):
    env.setenv("COURSE_SUPABASE_JWT_SECRET", "s" * 40)
    assert refusal().startswith("COURSE_SUPABASE_URL: required")
    env.setenv("COURSE_SUPABASE_URL", "https://abc.supabase.co/")
    env.setenv("COURSE_SUPABASE_JWT_SECRET", "short")
    assert refusal().startswith("COURSE_SUPABASE_JWT_SECRET:")
    env.setenv("COURSE_SUPABASE_JWT_SECRET", "s" * 40)
    get_settings.cache_clear()
    settings = get_settings()
    assert settings.supabase_issuer == "https://abc.supabase.co/auth/v1"
    assert settings.resolved_supabase_jwks_url == "https://abc.supabase.co/auth/v1/.well-known/jwks.json"


def test_allowed_origins_are_split_and_trailing_slashes_dropped(env):
    env.setenv("COURSE_ALLOWED_ORIGINS", " https://studio.example.com/ , http://localhost:3000,")

    assert get_settings().allowed_origins == ["https://studio.example.com", "http://localhost:3000"]


@pytest.mark.parametrize("origins", ["ftp://files.example.com", "https://ok.example.com,studio.example.com"])
def test_non_http_origin_is_refused_naming_the_setting(env, origins):
    env.setenv("COURSE_ALLOWED_ORIGINS", origins)

    message = refusal()

    assert message.startswith("COURSE_ALLOWED_ORIGINS:")
    assert "is not an http(s) origin" in message


def test_b2_backend_without_keys_is_refused(env):
    env.setenv("COURSE_STORAGE_BACKEND", "b2")

    assert refusal().startswith("COURSE_B2_KEY_ID: required when storage_backend is b2")


def test_b2_backend_names_the_first_missing_key(env):
    env.setenv("COURSE_STORAGE_BACKEND", "b2")
    env.setenv("COURSE_B2_KEY_ID", "key-id")
    env.setenv("COURSE_B2_BUCKET_NAME", "bucket")

    assert refusal().startswith("COURSE_B2_APPLICATION_KEY:")


def test_b2_backend_with_all_keys_is_accepted(env):
    settings = Settings(storage_backend="b2", b2_key_id="id", b2_application_key="key", b2_bucket_name="bucket")

    assert settings.storage_backend == "b2"


def test_unknown_storage_backend_is_refused(env):
    env.setenv("COURSE_STORAGE_BACKEND", "s3")

    assert refusal().startswith("COURSE_STORAGE_BACKEND:")


def test_zero_upload_limit_is_refused(env):
    env.setenv("COURSE_MAX_UPLOAD_BYTES", "0")

    assert refusal().startswith("COURSE_MAX_UPLOAD_BYTES:")


# Production -------------------------------------------------------------------


@pytest.mark.parametrize("secret", ["", "changeme", "CHANGETHIS", "secret", "short-but-random-9f2c"])
def test_production_refuses_placeholder_or_short_secret(env, secret):
    env.setenv("COURSE_ENVIRONMENT", "production")
    env.setenv("COURSE_DATABASE_URL", PG_URL)
    env.setenv("COURSE_SECRET_KEY", secret)

    message = refusal()

    assert message.startswith("COURSE_SECRET_KEY:")
    assert "at least 32 characters" in message


def test_production_refuses_a_missing_database_url(env):
    env.setenv("COURSE_ENVIRONMENT", "production")
    env.setenv("COURSE_SECRET_KEY", GOOD_SECRET)

    assert refusal() == "COURSE_DATABASE_URL: required in production"


def test_production_with_real_secret_and_database_is_accepted(env):
    env.setenv("COURSE_ENVIRONMENT", "production")
    env.setenv("COURSE_SECRET_KEY", GOOD_SECRET)
    env.setenv("COURSE_DATABASE_URL", PG_URL)

    settings = get_settings()

    assert settings.is_production
    assert settings.resolved_secret_key() == GOOD_SECRET


def test_direct_construction_raises_validation_error_not_a_half_built_object(env):
    with pytest.raises(ValidationError, match="COURSE_SECRET_KEY"):
        Settings(environment="production", secret_key="changeme", database_url=PG_URL)


# Start-up exit ----------------------------------------------------------------


def test_load_settings_or_exit_prints_one_line_and_exits_2(env, capsys):
    env.setenv("COURSE_DATABASE_URL", "mysql://x")

    with pytest.raises(SystemExit) as exited:
        load_settings_or_exit()

    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("Configuration error: COURSE_DATABASE_URL:")


def test_load_settings_or_exit_returns_good_settings(env, capsys):
    env.setenv("COURSE_MAX_UPLOAD_BYTES", "4096")

    assert load_settings_or_exit().max_upload_bytes == 4096
    assert capsys.readouterr().err == ""


def _cli_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("COURSE_")}
    env["COURSE_DATA_DIR"] = str(tmp_path / "data")
    env.update(overrides)
    return env


def test_cli_refuses_bad_configuration_with_one_line_and_exit_code_2(tmp_path):
    result = subprocess.run(
        [str(COURSE_APP), "migrate"],
        cwd=tmp_path,
        env=_cli_env(tmp_path, COURSE_DATABASE_URL="mysql://x"),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Configuration error: COURSE_DATABASE_URL:")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()


def test_cli_migrate_with_good_configuration_creates_the_database(tmp_path):
    result = subprocess.run(
        [str(COURSE_APP), "migrate"],
        cwd=tmp_path,
        env=_cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert "Database schema is up to date." in result.stdout
    assert (tmp_path / "data" / "course_studio.db").is_file()


# Generated development secret -------------------------------------------------


def test_secret_key_is_generated_once_and_reused(env, tmp_path):
    data_dir = tmp_path / "fresh"
    path = data_dir / "secret_key"
    assert not path.exists()

    first = Settings(data_dir=data_dir).resolved_secret_key()

    assert path.is_file()
    assert path.read_text(encoding="utf-8").strip() == first
    assert len(first) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Settings(data_dir=data_dir).resolved_secret_key() == first
    assert Settings(data_dir=tmp_path / "other").resolved_secret_key() != first


def test_configured_secret_key_wins_and_no_file_is_written(env, tmp_path):
    settings = Settings(data_dir=tmp_path / "d", secret_key=GOOD_SECRET)

    assert settings.resolved_secret_key() == GOOD_SECRET
    assert not (tmp_path / "d" / "secret_key").exists()

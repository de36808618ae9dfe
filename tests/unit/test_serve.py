"""course_app/serve.py and its settings: the command it hands over to, the workers'
environment (worker count, metrics folder), and the refusals that name a setting."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from course_app import serve
from course_app.settings import Settings, get_settings

COURSE_APP = os.path.join(os.path.dirname(sys.executable), "course-app")


def test_more_than_one_worker_needs_redis():
    with pytest.raises(ValueError, match="COURSE_WEB_WORKERS: more than one worker needs COURSE_REDIS_URL"):
        Settings(web_workers=2)
    assert Settings(web_workers=2, redis_url="redis://localhost:6379/0").web_workers == 2


@pytest.mark.parametrize("field, value", [("redis_url", "http://localhost"), ("public_url", "example.com"),
                                          ("metrics_token", "short"), ("metrics_token", "changeme")])
def test_bad_production_settings_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        Settings(**{field: value})


def test_json_logs_default_on_in_production_only():
    production = {"environment": "production", "secret_key": "k" * 40, "database_url": "postgresql://x/y"}
    assert not Settings().json_logs
    assert Settings(**production).json_logs
    assert not Settings(**production, log_format="text").json_logs
    assert Settings(log_format="json").json_logs


def test_public_url_loses_its_trailing_slash():
    assert Settings(public_url="https://courses.example.com/").public_url == "https://courses.example.com"


def test_command_serves_the_production_build_on_one_port():
    argv = serve.command(port=8123, host="127.0.0.1")
    assert argv[0].endswith("reflex")
    assert argv[1:] == ["run", "--env", "prod", "--single-port", "--frontend-port", "8123", "--backend-port", "8123",
                        "--backend-host", "127.0.0.1", "--loglevel", "info"]


def test_environment_sets_workers_and_a_metrics_folder_per_instance(tmp_path):
    plain = serve.environment(Settings(data_dir=tmp_path), port=8123, workers=1)
    assert plain["GRANIAN_WORKERS"] == "1" and "PROMETHEUS_MULTIPROC_DIR" not in plain
    settings = Settings(data_dir=tmp_path, metrics_token="t" * 20, redis_url="redis://localhost/0")
    env = serve.environment(settings, port=8123, workers=3)
    assert env["GRANIAN_WORKERS"] == "3"
    assert env["PROMETHEUS_MULTIPROC_DIR"] == str((tmp_path / "prometheus" / "8123").resolve())
    assert serve.metrics_dir(settings, 8124) != serve.metrics_dir(settings, 8123)


def test_serve_refuses_several_workers_without_redis(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURSE_")}
    env.update(COURSE_DATA_DIR=str(tmp_path / "data"))
    result = subprocess.run([COURSE_APP, "serve", "--workers", "2", "--port", "1"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "2 workers need COURSE_REDIS_URL" in result.stderr


def test_serve_is_a_command():
    from course_app.cli import build_parser

    args = build_parser().parse_args(["serve", "--port", "9000", "--workers", "2"])
    assert (args.port, args.workers, args.host) == (9000, 2, "0.0.0.0")
    get_settings.cache_clear()

"""Choosing the backend: ``build_storage`` and ``get_storage`` (course_app/storage/__init__.py)."""

from __future__ import annotations



from course_app.settings import Settings
from course_app.storage import build_storage, get_storage, set_storage_for_tests
from course_app.storage.local import LocalStorage


def test_get_storage_builds_the_configured_backend_once(tmp_path, monkeypatch):
    settings = Settings(storage_backend="local", storage_dir=tmp_path / "files", _env_file=None)
    built = build_storage(settings)
    assert isinstance(built, LocalStorage) and built.root == (tmp_path / "files").resolve()

    monkeypatch.setattr("course_app.storage.get_settings", lambda: settings)
    set_storage_for_tests(None)
    try:
        first = get_storage()
        assert get_storage() is first and first.root == built.root
        replacement = LocalStorage(tmp_path / "other")
        set_storage_for_tests(replacement)
        assert get_storage() is replacement
    finally:
        set_storage_for_tests(None)

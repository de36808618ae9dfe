"""What lies in a local storage folder (a running app's, or a LocalStorage's root),
temp files and sidecars included."""

from __future__ import annotations

from pathlib import Path


def files_under(root: Path) -> set[str]:
    """Every file below ``root``, as a POSIX path relative to it."""
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}


def storage_root(server) -> Path:
    """A running app's storage folder (``tests.server.AppServer``)."""
    return server.data_dir / "storage"


def stored_files(server) -> set[str]:
    """Every file in a running app's storage folder."""
    return files_under(storage_root(server))

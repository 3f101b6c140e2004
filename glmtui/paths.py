"""Every directory and file location glmtui uses, in one place."""

from __future__ import annotations

from pathlib import Path

import platformdirs

APP = "glmtui"
PROJECT_DIR = ".glmtui"
CONFIG_FILE = "config.yaml"


def user_config_file() -> Path:
    return Path(platformdirs.user_config_dir(APP)) / CONFIG_FILE


def find_project_dir(start: Path | None = None) -> Path | None:
    """The nearest `.glmtui/` folder at or above `start` (the current folder)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / PROJECT_DIR
        if candidate.is_dir():
            return candidate
    return None


def project_config_file(start: Path | None = None) -> Path | None:
    folder = find_project_dir(start)
    return folder / CONFIG_FILE if folder else None


def data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP))


def database_file() -> Path:
    return data_dir() / "glmtui.sqlite3"


def cache_dir() -> Path:
    """What can be thrown away at any time (it only saves work)."""
    return Path(platformdirs.user_cache_dir(APP))


def runs_dir() -> Path:
    """One folder per run, holding each step's full log."""
    return data_dir() / "runs"


def execs_dir() -> Path:
    """One log per command `glmtui env exec` ran, named by its record's id."""
    return data_dir() / "execs"


def images_dir() -> Path:
    """The image definitions shipped in the source tree beside the package."""
    return Path(__file__).resolve().parent.parent / "images"


def locks_dir() -> Path:
    """The lock files of named environments, by which runs that share one take turns."""
    return data_dir() / "locks"


def agents_log() -> Path:
    """What `glmtui serve` (and an agent run in the background) did: one line per event."""
    return data_dir() / "agents.log"


def agent_files_dir(data: Path | None = None) -> Path:
    """Agent files made in the TUI (`n` in the agents pane), NAME.yaml each, in the data folder
    (`data`: the folder of the database the TUI uses)."""
    return (data or data_dir()) / "agents"


def scheduler_lock() -> Path:
    """The lock (holding the pid) of the one process that runs the schedules of saved agents,
    beside the database whose agents it runs."""
    return data_dir() / "scheduler.lock"


def user_units_dir() -> Path:
    """Where systemd looks for a user's own units."""
    return Path(platformdirs.user_config_dir("systemd")) / "user"


def serve_token_file() -> Path:
    """The bearer token of `glmtui serve` (mode 0600), beside the user's config file."""
    return user_config_file().parent / "serve-token"


def runtime_dir() -> Path:
    """What lives only while the user is logged in (the control sockets of SSH connections to
    engines): $XDG_RUNTIME_DIR/glmtui, else a folder of the user's own in the temporary folder.
    Made 0700; one that belongs to someone else is refused (its sockets would carry our sessions)."""
    import os
    import tempfile

    runtime = os.environ.get("XDG_RUNTIME_DIR")
    folder = Path(runtime) / APP if runtime and Path(runtime).is_dir() else Path(tempfile.gettempdir()) / f"{APP}-{os.getuid()}"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.lstat()
    if info.st_uid != os.getuid() or info.st_mode & 0o077 or not folder.is_dir() or folder.is_symlink():
        from glmtui.errors import GlmtuiError

        raise GlmtuiError(f"{folder} is not a private folder of this user", hint="remove it, or set XDG_RUNTIME_DIR")
    return folder

"""The peers' virtual environments under bench/.venvs/<name>, made by the bench command (never Loom's dependencies)."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent / ".venvs"


def _same(name: str) -> str:
    """`name==version` as installed next to Loom, so the limit app runs the same Starlette and SQLAlchemy."""
    try:
        return f"{name}=={metadata.version(name)}"
    except metadata.PackageNotFoundError:
        return name


def requirements() -> dict[str, list[str]]:
    """What each peer's environment holds (the same server everywhere as Loom's: uvicorn with httptools and uvloop)."""
    common = [_same("uvicorn"), _same("httptools"), _same("uvloop"), "psycopg[binary]", "python-multipart"]
    return {
        "sqladmin": ["sqladmin", "sqlalchemy[asyncio]", *common],
        "starlette_admin": ["starlette-admin", "sqlalchemy[asyncio]", "jinja2", *common],
        "django": ["django", "django-import-export[xlsx]", *common],
        "limit": [_same("starlette"), _same("sqlalchemy"), _same("jinja2"), *common, "python-calamine", "xlsxwriter"],
    }


def python(name: str) -> Path:
    """The interpreter of one peer's environment."""
    return ROOT / name / "bin" / "python"


def ensure(name: str, quiet: bool = True) -> Path:
    """Create the environment once (a marker file holds what was asked); return its python."""
    wanted = "\n".join(requirements()[name])
    folder = ROOT / name
    marker = folder / "bench-requirements.txt"
    if marker.exists() and marker.read_text() == wanted:
        return python(name)
    folder.parent.mkdir(parents=True, exist_ok=True)
    if not python(name).exists():
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    flags = ["-q"] if quiet else []
    subprocess.run([str(python(name)), "-m", "pip", "install", *flags, "--disable-pip-version-check", *requirements()[name]],
                   check=True, timeout=900)
    marker.write_text(wanted)
    return python(name)


def versions(name: str) -> dict[str, str]:
    """The versions of the packages that matter in one environment."""
    code = ("import json,importlib.metadata as m\nout={}\n"
            "for p in ['sqladmin','starlette-admin','django','django-import-export','starlette','sqlalchemy','uvicorn','jinja2','psycopg']:\n"
            "    try: out[p]=m.version(p)\n    except Exception: pass\nprint(json.dumps(out))")
    import json

    done = subprocess.run([str(python(name)), "-c", code], capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout))


if __name__ == "__main__":
    for peer in sys.argv[1:] or list(requirements()):
        print(peer, ensure(peer, quiet=False))

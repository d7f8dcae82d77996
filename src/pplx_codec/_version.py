"""The installed distributions' versions, read from their metadata: this
package's (``__version__``, the CLI's ``--version``, the client's
User-Agent) once at import, and the peers' the CLI reports."""

from __future__ import annotations

from importlib import metadata


def dist_version(dist: str) -> str | None:
    """The installed version of distribution ``dist`` (None: not installed)."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


#: The version is written once, in pyproject.toml; a source tree without
#: installed metadata runs as "0+unknown".
VERSION = dist_version("pplx-codec") or "0+unknown"

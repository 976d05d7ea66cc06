"""The dashboard's static files: its own stylesheet (in this package) and htmx, which is never in
the repository: `make ui-assets` fetches it from the npm registry into
``<virtualenv>/share/tetra-ui/`` (or set TETRA_UI_ASSETS to another folder).

Without htmx every page still works: reading is plain links and forms, htmx only enhances.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from aiohttp import web

log = logging.getLogger("tetra.ui")
OWN = Path(__file__).parent / "static"
SCRIPTS = ("htmx.min.js",)


def vendor_dir() -> Path:
    return Path(os.environ.get("TETRA_UI_ASSETS") or Path(sys.prefix) / "share" / "tetra-ui")


def has_htmx() -> bool:
    return (vendor_dir() / "htmx.min.js").is_file()


async def static_file(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    if name in SCRIPTS:
        path = vendor_dir() / name
    elif name == "tetra.css":
        path = OWN / name
    else:
        raise web.HTTPNotFound()
    if not path.is_file():
        raise web.HTTPNotFound(text=f"{name} is not installed (make ui-assets)\n")
    response = web.FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})
    return response


def warn_if_missing() -> None:
    if not has_htmx():
        log.warning("htmx is not installed in %s (make ui-assets): the dashboard works without it", vendor_dir())

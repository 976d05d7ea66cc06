"""Where the files Tetra ships beside its code are: the certificate profiles `tetra init`
copies, and the deployment files (systemd unit, sysusers, tmpfiles, production config).

In a source tree they are under conf/. setuptools puts only Python packages in a wheel, so
pyproject.toml installs them as data files under <prefix>/share/tetra/ (the virtualenv, /usr/local
or ~/.local); a wheel that ran `tetra init` from site-packages found no conf/ and failed.
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

from ca.errors import ConfigError

SOURCE_CONF = Path(__file__).resolve().parent.parent / "conf"


def shipped(name: str) -> Path:
    """The shipped directory `name` ("profiles" or "deploy"): the source tree's, else the installed one."""
    candidates = [SOURCE_CONF / name, *(prefix / "share" / "tetra" / name for prefix in _install_prefixes())]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    looked = ", ".join(str(c) for c in dict.fromkeys(candidates))
    raise ConfigError(f"cannot find Tetra's {name} directory (looked in {looked}): reinstall tetra-ca")


def _install_prefixes() -> list[Path]:
    """Where pip puts data files for this interpreter: its own prefix, then the user scheme's."""
    prefixes = [Path(sysconfig.get_path("data")), Path(sys.prefix)]
    user_scheme = sysconfig.get_preferred_scheme("user")
    prefixes.append(Path(sysconfig.get_path("data", user_scheme)))
    return prefixes

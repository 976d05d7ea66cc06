"""dns-01 hook for certbot (--manual-auth-hook) and lego (exec provider): writes TXT records into
the JSON file the loopback DNS server reads.

certbot: `dns_hook.py FILE add|del` with CERTBOT_DOMAIN and CERTBOT_VALIDATION set.
lego:    `dns_hook.py FILE present|cleanup FQDN VALUE` (EXEC_PATH calls it with the three arguments).
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    path = Path(argv[1])
    action = argv[2]
    if action in ("add", "del"):
        name = "_acme-challenge." + os.environ["CERTBOT_DOMAIN"].removeprefix("*.")
        value = os.environ["CERTBOT_VALIDATION"]
    else:
        name, value = argv[3].rstrip("."), argv[4]
    with path.open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        records = json.loads(handle.read() or "{}")
        values = records.setdefault(name, [])
        if action in ("add", "present"):
            values.append(value)
        elif value in values:
            values.remove(value)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(records))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

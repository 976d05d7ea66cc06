"""The [manage] config section: where the management plane (/api/v1, /ui/) answers.

```toml
[manage]
listen = "127.0.0.1:8444"   # its own listener (HTTPS with the server's certificate when [server] https is set)
also_on = []                # public listeners ("http", "https") that may also answer /api/v1 and /ui/
allow_plain_http = false    # bearer tokens over plain HTTP from loopback only, unless a TLS proxy fronts it
max_body = 131072           # bytes of one API request body
```

The management plane is off the public enrolment listeners unless `also_on` names them: ACME,
EST and SCEP clients need the world, an operator's token does not. With neither `listen` nor
`also_on`, the plane is off altogether.
"""

from __future__ import annotations

from dataclasses import dataclass

from ca.tomlread import Table

PUBLIC_LISTENERS = ("http", "https")
MANAGE_LISTENER = "manage"  # the name of the manage listener's guard (server/limits.py)
DEFAULT_MAX_BODY = 128 * 1024


@dataclass(frozen=True)
class ManageSettings:
    listen: tuple[str, int] | None = None  # host, port of its own listener
    also_on: tuple[str, ...] = ()
    allow_plain_http: bool = False
    max_body: int = DEFAULT_MAX_BODY

    @property
    def enabled(self) -> bool:
        return self.listen is not None or bool(self.also_on)

    @property
    def listeners(self) -> frozenset[str]:
        """The names of the listeners whose connections may reach the management paths."""
        own = {MANAGE_LISTENER} if self.listen is not None else set()
        return frozenset(own | set(self.also_on))


def parse_manage(table: Table) -> ManageSettings:
    from server.config import Listen  # server.config reads this section: imported here, not at the top

    listen_text = table.get("listen", str, "")
    listen = Listen.parse(listen_text, table.where("listen")) if listen_text else None
    also_on = table.members("also_on", PUBLIC_LISTENERS, "listener", [])
    allow_plain_http = table.get("allow_plain_http", bool, False)
    max_body = table.get("max_body", int, DEFAULT_MAX_BODY)
    if not 1024 <= max_body <= 16 * 1024 * 1024:
        raise table.error("max_body", "must be between 1024 and 16777216 bytes")
    table.finish()
    return ManageSettings(
        listen=(listen.host, listen.port) if listen else None,
        also_on=tuple(also_on),
        allow_plain_http=allow_plain_http,
        max_body=max_body,
    )

"""One TLS listener process for the discovery benchmark: as cheap per handshake as Python gets, so
that the scanner, not the servers, sets the rate.

    python bench/discovery_listener.py --chain chain.pem --key key.pem [--port 0]

It binds 0.0.0.0 (so any 127.x.y.z address reaches it on Linux), prints "ready PORT" and then
answers a line "count" on stdin with "ACCEPTED HANDSHAKES": TCP connections taken, and TLS
handshakes completed (a probe's refused ClientHellos are accepted but not completed). It exits
when stdin closes. uvloop drives asyncio's TLS (the system OpenSSL through the ssl module); a
completed connection is held until the client hangs up, which the probe does at once.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
from dataclasses import dataclass


@dataclass
class Counters:
    accepted: int = 0
    handshakes: int = 0


class Held(asyncio.Protocol):
    """The application side of one connection: counted once its handshake completes, then idle."""

    def __init__(self, counters: Counters) -> None:
        self.counters = counters

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.counters.handshakes += 1

    def data_received(self, data: bytes) -> None:
        pass


def server_context(chain: str, key: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(chain, key)
    return context


async def serve(args: argparse.Namespace) -> None:
    counters = Counters()
    context = server_context(args.chain, args.key)

    def factory() -> Held:  # called at accept time, before the handshake
        counters.accepted += 1
        return Held(counters)

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        factory, "0.0.0.0", args.port, ssl=context, backlog=4096, ssl_handshake_timeout=10, reuse_address=True
    )
    print(f"ready {server.sockets[0].getsockname()[1]}", flush=True)
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    while line := await commands.readline():
        if line.strip() == b"count":
            print(f"{counters.accepted} {counters.handshakes}", flush=True)
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--chain", required=True, help="PEM: the leaf, then the intermediate")
    parser.add_argument("--key", required=True, help="PEM: the leaf's private key")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args))
    else:
        uvloop.run(serve(args))


if __name__ == "__main__":
    main()

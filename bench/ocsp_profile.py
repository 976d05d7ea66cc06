"""Where an OCSP answer's time goes, in µs per request, in one process without sockets
(bench_ocsp measures over HTTP): for nonce requests parse -> build -> sign -> encode; for
pre-signed POST and GET the handler plus the fast listener's rendering.

    python bench/ocsp_profile.py [--keys ec-p256,rsa-2048] [--requests 2000] [--cprofile]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import pstats
import secrets
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ocsp import Fixture, issued_rows, make_fixture, request_der

from ca.revocation import ocsp_der
from ca.revocation.ocsp import OcspService
from ca.revocation.pointers import install_pointers
from ca.revocation.settings import CrlSettings, OcspSettings, ResponderKeySettings
from ca.sigalg import sign_bytes
from protocols.base import WireResponse
from protocols.ocsp import codec
from protocols.ocsp.handlers import OcspHandlers
from server.plain_http import render
from server.wiring import build_ca, read_config


def per_request(seconds: float, count: int) -> str:
    return f"{seconds / count * 1e6:8.1f} µs"


async def profile(key_type: str, count: int, use_cprofile: bool) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="ocsp-profile-") as tmp:
        fx = await make_fixture(Path(tmp), count)
        ca = await build_ca(read_config(fx.directory / "tetra.toml"))
        settings = OcspSettings(
            key=ResponderKeySettings(key_type=key_type), presign_hashes=("sha1",), preload=False, fresh_rate=0
        )
        service = OcspService(ca, settings)
        handlers = OcspHandlers(service)
        try:
            await install_pointers(ca, CrlSettings())
            await service.start(preload=False)
            rows = issued_rows(fx.serials)
            await service.presign([(row, "sha1") for row in rows])  # statuses come from the cache, as when serving
            ders = [request_der(fx, fx.serials[i % len(fx.serials)], secrets.token_bytes(16)) for i in range(count)]
            for der in ders[:50]:  # warm: statuses cached, responder identity made
                await handlers.answer(der, get=False, if_none_match=None)
            lines = [f"## {key_type}", ""]
            profiler = cProfile.Profile() if use_cprofile else None
            started = time.perf_counter()
            if profiler:
                profiler.enable()
            for der in ders:
                await handlers.answer(der, get=False, if_none_match=None)
            if profiler:
                profiler.disable()
            total = time.perf_counter() - started
            lines.append(f"whole answer (handlers.answer):   {per_request(total, count)}")
            queries = []
            started = time.perf_counter()
            for der in ders:
                queries.append(codec.decode_request(der, max_bytes=settings.max_request_bytes, max_certs=4))
            lines.append(f"parse (codec.decode_request):     {per_request(time.perf_counter() - started, count)}")
            identity = await service.responders.identity("issuing-ca")
            statuses = await service._statuses("issuing-ca", queries[0].cert_ids)
            now = service.clock.now().replace(microsecond=0)
            started = time.perf_counter()
            tbs_list = []
            for query in queries:
                single = ocsp_der.single_response(query.cert_ids[0], statuses[0][0], now, now)
                tbs_list.append(ocsp_der.response_data(identity.responder_id, now, [single], query.nonce))
            lines.append(f"build tbsResponseData:            {per_request(time.perf_counter() - started, count)}")
            key = identity.signer.private_key()
            started = time.perf_counter()
            signatures = [sign_bytes(key, tbs, identity.hash_alg) for tbs in tbs_list]
            lines.append(f"sign (inline, no executor):       {per_request(time.perf_counter() - started, count)}")
            started = time.perf_counter()
            for tbs, signature in zip(tbs_list, signatures, strict=True):
                ocsp_der.ocsp_response(tbs, identity.algorithm, signature, identity.certs)
            lines.append(f"encode OCSPResponse:              {per_request(time.perf_counter() - started, count)}")
            lines += presigned(handlers, fx, count)
            lines.append("")
            if profiler:
                stats = pstats.Stats(profiler)
                stats.sort_stats("tottime")
                stream_lines: list[str] = []
                stats.stream = _Collect(stream_lines)  # type: ignore[attr-defined]
                stats.print_stats(15)
                lines += ["```", *"".join(stream_lines).splitlines()[-22:], "```", ""]
            return lines
        finally:
            await service.close()
            await ca.close()


def presigned(handlers: OcspHandlers, fx: Fixture, count: int) -> list[str]:
    """Cached answers as the plain-HTTP listener makes them: handler, then bytes on the wire."""
    ders = [request_der(fx, fx.serials[i % len(fx.serials)]) for i in range(count)]
    paths = ["/" + quote(base64.b64encode(der).decode(), safe="") for der in ders]
    lines = []
    date = b"Thu, 26 Nov 2026 13:00:00 GMT"
    for label, requests in (("POST", ders), ("GET", paths)):
        get = label == "GET"
        for request in requests[:100]:
            assert isinstance(handlers.answer_now(request, get=get, if_none_match=None), WireResponse)
        started = time.perf_counter()
        for request in requests:
            response = handlers.answer_now(request, get=get, if_none_match=None)
        handled = time.perf_counter() - started
        assert isinstance(response, WireResponse)
        started = time.perf_counter()
        for _ in requests:
            render(response, "1.1", True, date)
        rendered = time.perf_counter() - started
        lines.append(f"pre-signed {label:4} handler.answer_now:  {per_request(handled, count)}")
        lines.append(f"pre-signed {label:4} plain_http.render:   {per_request(rendered, count)}")
    return lines


class _Collect:
    def __init__(self, out: list[str]) -> None:
        self.out = out

    def write(self, text: str) -> None:
        self.out.append(text)


async def main(args: argparse.Namespace) -> None:
    lines: list[str] = []
    for key_type in args.keys.split(","):
        lines += await profile(key_type, args.requests, args.cprofile)
    print("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--keys", default="ec-p256,rsa-2048")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--cprofile", action="store_true")
    asyncio.run(main(parser.parse_args()))

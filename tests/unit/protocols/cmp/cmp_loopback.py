"""A loopback HTTP endpoint that answers `openssl cmp` with replies built by protocols/cmp.

Not the CMP server (protocols/cmp/responder.py): a test responder that decodes each request, checks its
protection, and answers with `protocols.cmp.reply`, so that the real client, which checks
protection, transactionID, nonces, pvno and the certificate against its key, judges our
replies inside a live transaction.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from protocols.cmp import bodies
from protocols.cmp.config import MacLimits
from protocols.cmp.der import explicit, sequence
from protocols.cmp.errors import CmpFailure, FailInfo
from protocols.cmp.message import PkiMessage, decode_message
from protocols.cmp.protection import is_mac_protected, verify_mac, verify_signature_protection
from protocols.cmp.reply import MacProtection, Protection, SignatureProtection, build_reply
from tests.tetra_process import free_port
from tests.unit.protocols.cmp.cmp_vectors import CA_NAME, SECRET, certificate, server_signer


@dataclass
class Responder:
    """Answers ir/cr/kur/p10cr with issued.pem (after ``polls`` rounds of polling), rr with
    accepted, certConf with pkiconf, genm with caCerts or a certReqTemplate; bodies named in ``refuse`` with an
    error message carrying ``failure``."""

    grant_implicit_confirm: bool = False
    polls: int = 0  # answer an enrolment "waiting" and this many pollReqs with pollRep first
    refuse: tuple[str, ...] = ()
    failure: CmpFailure = field(default_factory=lambda: CmpFailure(FailInfo.badCertTemplate, "template refused"))
    seen: list[PkiMessage] = field(default_factory=list)
    replies: list[PkiMessage] = field(default_factory=list)
    enrolment: tuple[int, int] = (0, 0)  # reply tag and certReqId of the enrolment being polled for

    def protection_for(self, request: PkiMessage) -> Protection:
        if is_mac_protected(request):
            return MacProtection(verify_mac(request, SECRET, MacLimits()), request.sender_kid)
        verify_signature_protection(request, request.extra_certs()[0])
        return SignatureProtection(server_signer(), certificate("server.pem"), (certificate("root.pem"),))

    def body_for(self, request: PkiMessage) -> bytes:
        kind = request.body_type
        if kind in self.refuse:
            return bodies.error(self.failure)
        if kind in ("ir", "cr", "kur", "p10cr"):
            if kind == "p10cr":
                cert_req_id = bodies.P10CR_CERT_REQ_ID
            else:
                cert_req_id = int(request.body[kind][0]["certReq"]["certReqId"])
            issued = None if self.polls else certificate("issued.pem")
            self.enrolment = (bodies.CERT_REP_TAGS[kind], cert_req_id)
            return bodies.cert_rep(bodies.CERT_REP_TAGS[kind], cert_req_id, issued)
        if kind == "pollReq":
            tag, cert_req_id = self.enrolment
            self.polls -= 1
            if self.polls:
                return bodies.poll_rep(cert_req_id, check_after=0, reason="waiting for approval")
            return bodies.cert_rep(tag, cert_req_id, certificate("issued.pem"))
        if kind == "rr":
            return bodies.revocation_reply(bodies.PkiStatus.accepted)
        if kind == "certConf":
            return bodies.pki_conf()
        if kind == "genm":
            return bodies.genp([self.itav_for(str(itav["infoType"])) for itav in request.body["genm"]])
        return bodies.error(CmpFailure(FailInfo.badRequest, f"{kind} is not answered here"))

    def itav_for(self, info_type: str) -> bytes:
        if info_type == bodies.ID_IT_CA_CERTS:
            return bodies.ca_certs([certificate("root.pem")])
        if info_type == bodies.ID_IT_CERT_REQ_TEMPLATE:
            return bodies.cert_req_template(
                sequence(sequence(explicit(5, certificate("issued.pem").subject.public_bytes())))
            )
        return bodies.itav(info_type)  # nothing to say about it

    def answer(self, raw: bytes) -> bytes:
        request = decode_message(raw)
        self.seen.append(request)
        protection = self.protection_for(request)
        sender = CA_NAME if isinstance(protection, MacProtection) else certificate("server.pem").subject
        reply = asyncio.run(
            build_reply(
                request,
                sender,
                self.body_for(request),
                protection,
                implicit_confirm=self.grant_implicit_confirm,
            )
        )
        self.replies.append(decode_message(reply))
        return reply


@contextmanager
def serving(responder: Responder) -> Iterator[str]:
    """Run ``responder`` on a loopback port; yields the -server argument for openssl cmp."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            reply = responder.answer(raw)
            self.send_response(200)
            self.send_header("Content-Type", "application/pkixcmp")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}/pkix/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

"""Loopback helpers for ACME tests: a tiny authoritative DNS server and an http-01 responder.

The validation authority is pointed at these with ``[acme.validation] resolver``
and ``http_port``, as Pebble's challenge test server is: every name resolves to
127.0.0.1 unless told otherwise, TXT and CAA answers come from dictionaries the
test fills (certbot's manual hook and lego's exec provider write TXT records
through `dns_hook.py`-style files, see `TxtFile`).
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


class LoopbackDns:
    """UDP DNS on 127.0.0.1: A 127.0.0.1 for every name, TXT/CAA from dicts, SERVFAIL on request.

    ``txt_file`` (optional) is a JSON object {name: [values]} re-read on each query, so
    external hook processes (certbot, lego) can publish dns-01 records.
    """

    def __init__(self, txt_file: Path | None = None) -> None:
        self.a: dict[str, str] = {}
        self.txt: dict[str, list[str]] = {}
        self.caa: dict[str, list[tuple[int, str, str]]] = {}
        self.cname: dict[str, str] = {}
        self.servfail: set[str] = set()
        self.txt_file = txt_file
        self.queries: list[tuple[str, str]] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._stop = False

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> LoopbackDns:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop = True
        self._sock.close()

    def _txt_records(self, name: str) -> list[str]:
        values = list(self.txt.get(name, []))
        if self.txt_file is not None and self.txt_file.exists():
            try:
                values += json.loads(self.txt_file.read_text() or "{}").get(name, [])
            except ValueError:
                pass
        return values

    def _serve(self) -> None:
        while not self._stop:
            try:
                data, peer = self._sock.recvfrom(4096)
            except OSError:
                return
            try:
                reply = self.answer(dns.message.from_wire(data))
            except Exception:  # a garbled query gets no answer, as on the Internet
                continue
            try:
                self._sock.sendto(reply.to_wire(), peer)
            except OSError:
                return

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text().rstrip(".").lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        if name in self.servfail:
            reply.set_rcode(dns.rcode.SERVFAIL)
            return reply
        target = name
        if name in self.cname:
            target = self.cname[name]
            reply.answer.append(dns.rrset.from_text(question.name, 60, "IN", "CNAME", target + "."))
        owner = dns.name.from_text(target)
        if rdtype == "A":
            reply.answer.append(dns.rrset.from_text(owner, 60, "IN", "A", self.a.get(target, "127.0.0.1")))
        elif rdtype == "TXT":
            values = self._txt_records(target)
            if values:
                reply.answer.append(dns.rrset.from_text_list(owner, 60, "IN", "TXT", [f'"{v}"' for v in values]))
        elif rdtype in ("SOA", "NS") and target.count(".") == 1:
            # Every two-label name is a zone of ours (lego's dns-01 pre-check looks for one).
            data = f"ns1.{target}. hostmaster.{target}. 1 3600 600 86400 60" if rdtype == "SOA" else f"ns1.{target}."
            reply.answer.append(dns.rrset.from_text(owner, 60, "IN", rdtype, data))
        elif rdtype == "CAA" and target in self.caa:
            reply.answer.append(
                dns.rrset.from_text_list(
                    owner, 60, "IN", "CAA", [f'{flags} {tag} "{value}"' for flags, tag, value in self.caa[target]]
                )
            )
        return reply


class Http01Responder:
    """Serves /.well-known/acme-challenge/<token> from a dict, on a loopback port, in a thread.
    With ``directory``, a token missing from the dict is read from the file of that name there
    (clients such as dehydrated write their challenge files into a web root)."""

    def __init__(self, port: int = 0, directory: Path | None = None) -> None:
        self.tokens: dict[str, str] = {}
        self.redirects: dict[str, str] = {}
        tokens, redirects = self.tokens, self.redirects

        def lookup(token: str) -> str | None:
            if token in tokens or directory is None or not token.replace("-", "").replace("_", "").isalnum():
                return tokens.get(token)
            path = directory / token
            return path.read_text().strip() if path.is_file() else None

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                token = self.path.rsplit("/", 1)[-1]
                if self.path in redirects:
                    self.send_response(302)
                    self.send_header("Location", redirects[self.path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = lookup(token)
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> Http01Responder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Http01Responder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class TlsAlpnResponder:
    """A TLS server answering ALPN "acme-tls/1" with a per-name challenge certificate (RFC 8737 §3)."""

    def __init__(self) -> None:
        import ssl

        self.contexts: dict[str, ssl.SSLContext] = {}
        self._default = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._dir = Path(__import__("tempfile").mkdtemp(prefix="tlsalpn-"))
        cert, key = self._write("default.invalid", None)
        self._default.load_cert_chain(cert, key)
        self._default.set_alpn_protocols(["acme-tls/1"])
        contexts = self.contexts

        def pick(sslobj: ssl.SSLObject | ssl.SSLSocket, name: str | None, _ctx: ssl.SSLContext) -> None:
            if name and name in contexts:
                sslobj.context = contexts[name]

        self._default.sni_callback = pick
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _write(self, name: str, key_authorization: str | None, *, critical: bool = True) -> tuple[str, str]:
        import datetime as dt
        import hashlib
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID, ObjectIdentifier

        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        try:
            san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
        except ValueError:
            san = x509.DNSName(name)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "acme")]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "acme")]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        )
        if key_authorization is not None:
            digest = hashlib.sha256(key_authorization.encode()).digest()
            builder = builder.add_extension(
                x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.5.5.7.1.31"), b"\x04\x20" + digest),
                critical=critical,
            )
        cert = builder.sign(key, hashes.SHA256())
        stem = self._dir / name.replace(":", "_")
        (stem.with_suffix(".pem")).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (stem.with_suffix(".key")).write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return str(stem.with_suffix(".pem")), str(stem.with_suffix(".key"))

    def publish(self, name: str, key_authorization: str, *, sni: str | None = None, critical: bool = True) -> None:
        import ssl

        cert, key = self._write(name, key_authorization, critical=critical)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        context.set_alpn_protocols(["acme-tls/1"])
        self.contexts[sni or name] = context

    def start(self) -> TlsAlpnResponder:
        self._thread.start()
        return self

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(5)
            with self._default.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
        except OSError:
            pass

    def stop(self) -> None:
        self._sock.close()

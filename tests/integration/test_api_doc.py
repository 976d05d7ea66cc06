"""docs/api.md says what the management API answers (OPS-18): every ```sh block of the page
runs, in order, in one shell against a real `tetra serve` on a demo CA (its admin's token in
var/secrets/api-token), and what it prints (the HTTP status, then the JSON body) matches the
```text block printed under it; the prose's promises that no block can show (the 401's
challenge, the refusal of a token over plain HTTP from a non-loopback address, the plane's
absence from a public listener not in also_on) are checked against the same server.

The one substitution: the page's ports 8080, 8443 and 8444 become free ones. In a documented body,
`…` stands for what differs from run to run (a serial, the PEM's base64): the text before it
must begin the value and the text after it end it; everything else is compared exactly.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.doc_blocks import Block, blocks
from tests.doc_shell import ShellSession
from tests.tetra_process import TetraProcess, free_port, init_ca

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
ELLIPSIS = "…"


@dataclass
class Served:
    root: Path  # holds var/, the shell's working directory
    http_port: int
    https_port: int
    manage_port: int

    def ported(self, text: str) -> str:
        for documented, port in ((8443, self.https_port), (8080, self.http_port), (8444, self.manage_port)):
            text = text.replace(f"127.0.0.1:{documented}", f"127.0.0.1:{port}")
        return text

    @property
    def token(self) -> str:
        return (self.root / "var" / "secrets" / "api-token").read_text().strip()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The page's demo CA and server; the API also on plain HTTP (also_on), on every address,
    so that a request can come from a non-loopback one."""
    root = tmp_path_factory.mktemp("api-doc")
    site = Served(root, free_port(), free_port(), free_port())
    init_ca(root / "var", site.http_port, site.https_port)
    env = {
        "TETRA_SERVER__HTTP": f"0.0.0.0:{site.http_port}",
        "TETRA_MANAGE__LISTEN": f"127.0.0.1:{site.manage_port}",
        "TETRA_MANAGE__ALSO_ON": '["http"]',
    }
    server = TetraProcess(root / "var" / "tetra.toml", env, root / "serve.log")
    try:
        server.wait_ready(f"http://127.0.0.1:{site.http_port}/readyz")
        yield site
    finally:
        server.stop()


def examples() -> list[tuple[Block, Block | None]]:
    """Each command block with the answer block printed right under it (None for set-up)."""
    found = blocks(DOC)
    pairs = []
    for i, block in enumerate(found):
        if block.language == "sh":
            after = found[i + 1] if i + 1 < len(found) and found[i + 1].language == "text" else None
            pairs.append((block, after))
    return pairs


def matches(documented: Any, actual: Any) -> bool:
    if isinstance(documented, dict):
        return (
            isinstance(actual, dict)
            and documented.keys() == actual.keys()
            and all(matches(documented[k], actual[k]) for k in documented)
        )
    if isinstance(documented, str) and ELLIPSIS in documented:
        head, _, tail = documented.partition(ELLIPSIS)
        return isinstance(actual, str) and actual.startswith(head) and actual.endswith(tail)
    return bool(documented == actual)


def status_and_body(text: str) -> tuple[str, Any]:
    status, _, body = text.strip().partition("\n")
    return status, json.loads(body)


def test_every_example_answers_as_documented(served: Served) -> None:
    """OPS-18: each block runs; its status and body are the ones the page prints."""
    pairs = examples()
    assert len(pairs) >= 9 and pairs[0][1] is None, "the page lost its set-up block or examples"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETRA_") and k != "CURL_CA_BUNDLE"}
    shell = ShellSession(served.root, env)
    checked = []
    for block, answer in pairs:
        if answer is None:  # set-up: what it exports holds for the blocks after it
            shell.run_ok(served.ported(block.text))
            continue
        run = shell.sh(served.ported(block.text))
        assert run.returncode == 0, f"line {block.line}: {run.stderr}"
        got_status, got_body = status_and_body(run.stdout)
        want_status, want_body = status_and_body(answer.text)
        assert got_status == want_status, f"line {block.line}: {run.stdout}"
        assert matches(want_body, got_body), f"line {block.line}: documented {want_body}, got {got_body}"
        checked.append(want_status)
    assert {"201", "200", "202", "400", "401", "404", "405", "409", "413"} <= set(checked)


def _documented_refusal() -> Any:
    (block,) = [b for b in blocks(DOC) if b.language == "text" and "HTTPS only" in b.text]
    return json.loads(block.text)


def _non_loopback_address() -> str | None:
    """An address of this machine other than loopback (the route to a documentation network)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the route
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def _call(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read())


def test_token_over_plain_http_from_elsewhere_is_refused_as_documented(served: Served) -> None:
    """OPS-18, OPS-05: the page's 403 body, from a non-loopback address; from loopback the
    same call is served (here: the 404 of a request that does not exist)."""
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to call from")
    auth = {"Authorization": f"Bearer {served.token}"}
    status, _, body = _call(f"http://{address}:{served.http_port}/api/v1/requests/987654", auth)
    assert (status, body) == (403, _documented_refusal())
    status, _, body = _call(f"http://127.0.0.1:{served.http_port}/api/v1/requests/987654", auth)
    assert (status, body["type"]) == (404, "urn:tetra:problem:not-found"), body


def test_missing_token_gets_the_documented_challenge(served: Served) -> None:
    """OPS-18: 401 with `WWW-Authenticate: Bearer realm="tetra-api"`, as the page says."""
    status, headers, body = _call(f"http://127.0.0.1:{served.http_port}/api/v1/requests/1", {})
    assert status == 401 and body["type"] == "urn:tetra:problem:unauthenticated"
    assert headers["WWW-Authenticate"] == 'Bearer realm="tetra-api"'
    assert 'WWW-Authenticate: Bearer realm="tetra-api"' in DOC.read_text()


def test_the_https_listener_has_no_management_plane(served: Served) -> None:
    """OPS-18: as the page says, a public listener that also_on does not name answers /api/v1
    with a plain 404, whatever the token."""
    context = ssl.create_default_context(cafile=str(served.root / "var" / "ca" / "root.pem"))
    request = urllib.request.Request(
        f"https://127.0.0.1:{served.https_port}/api/v1/openapi.json",
        headers={"Authorization": f"Bearer {served.token}"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10, context=context)
    assert refused.value.code == 404
    assert refused.value.headers.get_content_type() != "application/problem+json"

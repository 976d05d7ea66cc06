"""conf/deploy/cert-manager-clusterissuer.yaml: a ClusterIssuer cert-manager accepts, pointing at
Tetra's ACME directory, with an EAB key made by the `tetra acme eab` commands its comments give,
run here as written against a real server (OPS-17)."""

from __future__ import annotations

import base64
import json
import shlex
import ssl
import subprocess
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from protocols.registry import PROTOCOLS
from tests.cli_here import tetra_here
from tests.deploy.deploy_files import DEPLOY, production_config
from tests.tetra_process import TetraProcess, free_port, init_ca

ISSUER_FILE = DEPLOY / "cert-manager-clusterissuer.yaml"

# The fields of cert-manager.io/v1 ClusterIssuer this example may use, from cert-manager's API
# reference (ACMEIssuer, ACMEExternalAccountBinding, SecretKeySelector, ACMEChallengeSolver):
# a misspelt key is silently ignored by the API server's pruning, so the test refuses it here.
# A dict maps a key to its fields; a list holds items of one shape; None is a scalar.
SECRET_REF = {"name": None, "key": None}
CLUSTER_ISSUER: dict[str, Any] = {
    "apiVersion": None,
    "kind": None,
    "metadata": {"name": None, "labels": None, "annotations": None},
    "spec": {
        "acme": {
            "server": None,
            "email": None,
            "caBundle": None,
            "skipTLSVerify": None,
            "preferredChain": None,
            "profile": None,
            "disableAccountKeyGeneration": None,
            "enableDurationFeature": None,
            "privateKeySecretRef": SECRET_REF,
            "externalAccountBinding": {"keyID": None, "keySecretRef": SECRET_REF, "keyAlgorithm": None},
            "solvers": [
                {
                    "selector": None,
                    "http01": {"ingress": {"ingressClassName": None, "class": None, "name": None}},
                    "dns01": None,
                }
            ],
        }
    },
}
EAB_ALGORITHMS = {"HS256", "HS384", "HS512"}  # cert-manager's enum; Tetra's keys are HS256


def unknown_fields(value: Any, shape: Any, where: str = "") -> list[str]:
    """Every key of `value` that `shape` does not have, by its dotted path."""
    if isinstance(shape, dict):
        assert isinstance(value, dict), where
        found = [f"{where}{key}" for key in value if key not in shape]
        for key, inner in value.items():
            if key in shape and shape[key] is not None:
                found += unknown_fields(inner, shape[key], f"{where}{key}.")
        return found
    if isinstance(shape, list):
        assert isinstance(value, list), where
        return [bad for item in value for bad in unknown_fields(item, shape[0], where)]
    return []


def _documents() -> tuple[dict[str, Any], dict[str, Any]]:
    secret, issuer = yaml.safe_load_all(ISSUER_FILE.read_text())
    return secret, issuer


def test_cluster_issuer_has_cert_managers_shape() -> None:
    """OPS-17: a cert-manager.io/v1 ClusterIssuer with no field cert-manager lacks (a copy with
    keyId for keyID is caught), an ACME server, an account key Secret, and EAB with key id,
    HS256 and a keySecretRef naming the Secret in cert-manager's namespace and its key."""
    secret, issuer = _documents()
    assert (issuer["apiVersion"], issuer["kind"]) == ("cert-manager.io/v1", "ClusterIssuer")
    assert unknown_fields(issuer, CLUSTER_ISSUER) == []
    misspelt = json.loads(json.dumps(issuer).replace('"keyID"', '"keyId"'))
    assert unknown_fields(misspelt, CLUSTER_ISSUER) == ["spec.acme.externalAccountBinding.keyId"]

    acme = issuer["spec"]["acme"]
    assert acme["server"] and acme["privateKeySecretRef"]["name"] and acme["solvers"]
    eab = acme["externalAccountBinding"]
    assert eab["keyAlgorithm"] == "HS256" and eab["keyAlgorithm"] in EAB_ALGORITHMS and eab["keyID"]
    assert (secret["apiVersion"], secret["kind"], secret["metadata"]["namespace"]) == ("v1", "Secret", "cert-manager")
    assert secret["metadata"]["name"] == eab["keySecretRef"]["name"]
    assert set(secret["stringData"]) == {eab["keySecretRef"]["key"]}


def test_server_is_tetras_acme_directory(tmp_path: Path) -> None:
    """OPS-17: acme.server is the production config's https_url followed by the ACME protocol's
    prefix and /directory."""
    _, issuer = _documents()
    server = urlsplit(issuer["spec"]["acme"]["server"])
    https_url = urlsplit(production_config(tmp_path).https_url)
    assert (server.scheme, server.netloc) == (https_url.scheme, https_url.netloc)
    assert server.path == f"{https_url.path}{PROTOCOLS['acme'].prefix}/directory"


def _eab_commands() -> list[list[str]]:
    """The `tetra acme eab ...` command lines in the file's comments."""
    lines = (line.lstrip("# ").strip() for line in ISSUER_FILE.read_text().splitlines() if line.startswith("#"))
    return [shlex.split(line) for line in lines if line.startswith("tetra acme eab ")]


def _run(argv: list[str], config: Path) -> subprocess.CompletedProcess[str]:
    """One command as written, with its --config pointed at the test CA's."""
    at = argv.index("--config")
    argv = [*argv[: at + 1], str(config), *argv[at + 2 :]]
    return tetra_here(*argv[1:])  # server.cli.main in this process (tests/cli_here.py)


@pytest.mark.slow
def test_eab_commands_as_written_make_the_key_the_issuer_names(tmp_path: Path) -> None:
    """OPS-17: against a served CA that requires EAB (as conf/deploy/tetra.toml does), the
    directory at acme.server's path answers with externalAccountRequired; the comments' `eab
    create` prints the issuer's keyID and an unpadded base64url HMAC key of 256 bits (the form
    cert-manager reads from the Secret); their `eab revoke` then revokes it, and a second revoke
    is a one-line error."""
    commands = _eab_commands()
    assert [argv[:4] for argv in commands] == [["tetra", "acme", "eab", "create"], ["tetra", "acme", "eab", "revoke"]]
    _, issuer = _documents()
    http, https = free_port(), free_port()
    init_ca(tmp_path / "ca", http, https)
    config = tmp_path / "ca" / "tetra.toml"
    env = {"TETRA_ACME__EXTERNAL_ACCOUNT_REQUIRED": "true"}
    server = TetraProcess(config, env, tmp_path / "serve.log")
    try:
        context = ssl.create_default_context(cafile=str(tmp_path / "ca" / "ca" / "root.pem"))
        server.wait_ready(f"https://127.0.0.1:{https}/healthz", context=context)
        path = urlsplit(issuer["spec"]["acme"]["server"]).path
        with urllib.request.urlopen(f"https://127.0.0.1:{https}{path}", timeout=10, context=context) as reply:
            directory = json.load(reply)
        assert directory["meta"]["externalAccountRequired"] is True and "newAccount" in directory

        created = _run(commands[0], config)
        assert created.returncode == 0, created.stderr
        printed = dict(line.split(":", 1) for line in created.stdout.splitlines())
        key_id, hmac_key = printed["key id"].strip(), printed["hmac key"].strip()
        assert key_id == issuer["spec"]["acme"]["externalAccountBinding"]["keyID"]
        assert "=" not in hmac_key and not set(hmac_key) & set("+/")
        assert len(base64.urlsafe_b64decode(hmac_key + "=" * (-len(hmac_key) % 4))) >= 32

        revoked = _run(commands[1], config)
        assert revoked.returncode == 0 and key_id in revoked.stdout, revoked.stderr
        again = _run(commands[1], config)
        assert again.returncode != 0 and len(again.stderr.splitlines()) == 1, again.stderr
    finally:
        server.stop()

"""A thin, cached wrapper around pkilint: the CA's pre-signing lint gate and the tests' oracle.

pkilint validators are expensive to build (a CA/B Forum server-auth validator parses the
Public Suffix List five times, ~0.2 s each type) but cheap to run, so each one is built
once, on first use, and kept for the life of the process.

Thread safety: a built validator holds no per-run state. Every run creates its own
pkilint ``Document`` and node tree, validators only read their own attributes after
``__init__`` (checked over pkilint 0.13.3's source: no validator assigns to ``self``
outside ``__init__``), the shared pyasn1 schema objects are only used as decoding
templates and the Public Suffix List objects are only looked up. So cached validators are
used from several threads without a lock (``test_concurrent_lints_match_serial`` checks
it); only their construction is serialised, so that each is built exactly once.

Garbage input never raises: anything pkilint cannot parse, and any exception pkilint
throws, comes back as a finding of severity ``FATAL``.
"""

from __future__ import annotations

import inspect
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final

from pkilint import document, finding_filter, pkix, validation
from pkilint.cabf import cabf_crl, serverauth
from pkilint.cabf.serverauth import serverauth_constants
from pkilint.pkix import certificate, crl, extension, name, ocsp

__all__ = [
    "CERTIFICATE_PROFILES",
    "CRL_PROFILES",
    "ERROR_SEVERITIES",
    "LintFinding",
    "certificate_lint_errors",
    "format_findings",
    "has_errors",
    "lint_certificate",
    "lint_crl",
    "lint_ocsp_responder_certificate",
    "lint_ocsp_response",
    "warm_up",
]

CERTIFICATE_PROFILES: Final = ("pkix", "cabf-serverauth")
"""``pkix``: RFC 5280, as ``lint_pkix_cert``; ``cabf-serverauth``: the TLS BRs, as
``lint_cabf_serverauth_cert``."""

CRL_PROFILES: Final = ("pkix", "cabf", "cabf-arl")
"""``pkix``: RFC 5280; ``cabf``/``cabf-arl``: BR CRL/ARL rules (``lint_crl -p BR -t CRL|ARL``)."""

ERROR_SEVERITIES: Final = frozenset({"FATAL", "ERROR"})
"""Severities that refuse issuance (pkilint orders FATAL < ERROR < WARNING < NOTICE < INFO)."""

_SEVERITY_RANK: Final = {"FATAL": 0, "ERROR": 1, "WARNING": 2, "NOTICE": 3, "INFO": 4, "DEBUG": 5}

CODE_UNPARSABLE: Final = "tetra.lint.unparsable"
CODE_LINTER_CRASHED: Final = "tetra.lint.linter_exception"
CODE_CABF_TYPE_UNDETERMINED: Final = "tetra.lint.cabf_type_undetermined"


@dataclass(frozen=True)
class LintFinding:
    """One pkilint finding, flattened to plain strings so callers need not import pkilint."""

    severity: str
    code: str
    path: str
    message: str

    @property
    def is_error(self) -> bool:
        """True when this finding must refuse issuance."""
        return self.severity in ERROR_SEVERITIES

    def __str__(self) -> str:
        where = f" @ {self.path}" if self.path else ""
        what = f": {' '.join(self.message.splitlines())}" if self.message else ""
        return f"{self.severity} {self.code}{where}{what}"


def has_errors(findings: Iterable[LintFinding]) -> bool:
    """Whether any finding is at ERROR level or worse."""
    return any(f.is_error for f in findings)


def format_findings(findings: Sequence[LintFinding]) -> str:
    """One finding per line, for logs, refusal details and assertion messages."""
    return "\n".join(str(f) for f in findings) if findings else "(no findings)"


# --- indexed traversal ------------------------------------------------------------------
#
# pkilint's ValidatorContainer offers every validator to every node of the document and lets
# each validator's match() decide: about 7,000 match() calls per leaf certificate, a third of
# the lint's time, nearly all of them refusals by the validator's own path or ASN.1 class. The
# traversal below asks, for each node, only the validators whose static filters (path, path
# regex, pdu_class: functions of the node's path and PDU type alone) admit it, in pkilint's
# order, and still calls match() on those. A validator is filtered ahead of time only when
# match() is NodeVisitor.match, or an override that returns False whenever the inherited
# match() does (checked on its source: it starts with `if not super().match(node): return
# False` or `return super().match(node) and ...`); any other validator is offered every node.
# So the results are those of pkilint's own traversal, in the same order
# (test_indexed_traversal_matches_pkilint checks it on good and bad certificates).

_BASE_MATCH = document.NodeVisitor.match
_GATED_MATCH = re.compile(
    r"def match\(self, node[^)]*\)[^:]*:\s*(?:\"\"\"[^\"]*\"\"\"\s*)?"
    r"(?:if not super\(\)\.match\(node\):\s*return False|return \(?\s*super\(\)\.match\(node\)\s+and\b)"
)
_INDEX_LIMIT = 20_000  # (PDU type, path) keys per container before its index is rebuilt
_statically_filterable: dict[type, bool] = {}


def _match_is_gated(cls: type) -> bool:
    """Whether every match() along the class's MRO refuses whatever NodeVisitor.match refuses."""
    known = _statically_filterable.get(cls)
    if known is not None:
        return known
    gated = True
    for klass in cls.__mro__:
        if klass is document.NodeVisitor:
            break
        method = klass.__dict__.get("match")
        if method is None:
            continue
        try:
            source = inspect.getsource(method)
        except (OSError, TypeError):
            gated = False
            break
        if not _GATED_MATCH.search(inspect.cleandoc(source)):
            gated = False
            break
    _statically_filterable[cls] = gated
    return gated


def _may_match(v: Any, pdu_type: type, path: str) -> bool:
    """False only when NodeVisitor.match is sure to refuse a node of this type and path."""
    if not isinstance(v, document.NodeVisitor) or not _match_is_gated(type(v)):
        return True
    if v._path is not None and v._path != path:
        return False
    if v._path_re is not None and v._path_re.match(path) is None:
        return False
    return v._pdu_class is None or issubclass(pdu_type, v._pdu_class)


_indexed: ContextVar[bool] = ContextVar("tetra_lint_indexed", default=True)


@contextmanager
def reference_traversal() -> Iterator[None]:
    """Lint with pkilint's own traversal inside this block (validators built and cached apart):
    the tests' independent check of what the indexed traversal lets through."""
    token = _indexed.set(False)
    try:
        yield
    finally:
        _indexed.reset(token)


def _index_traversal(container: Any) -> Any:
    """Give ``container`` (and every container inside it) the indexed traversal; returns it.
    Inside reference_traversal() the container keeps pkilint's own."""
    if not _indexed.get():
        return container
    validators = list(container.validators)
    index: dict[tuple[type, str], list[Any]] = {}

    def validate_rec(node: Any, results: list[Any]) -> None:
        key = (type(node.pdu), node.path)
        candidates = index.get(key)
        if candidates is None:
            if len(index) >= _INDEX_LIMIT:
                index.clear()
            candidates = [v for v in validators if _may_match(v, key[0], key[1])]
            index[key] = candidates
        for v in candidates:
            if v.match(node):
                result = v.validate_wrapper(node)
                if isinstance(result, list):
                    results += result
                else:
                    results.append(result)
        for child in node.children.values():
            validate_rec(child, results)

    container._validate_rec = validate_rec  # shadows ValidatorContainer._validate_rec
    for v in validators:
        if isinstance(v, validation.ValidatorContainer):
            _index_traversal(v)
    return container


# --- validator cache -------------------------------------------------------------------

_build_lock = threading.Lock()
_cache: dict[str, Any] = {}


def _cached(key: str, build: Callable[[], Any]) -> Any:
    """Return the object cached under ``key``, building it once (double-checked)."""
    if not _indexed.get():
        key = f"reference:{key}"
    found = _cache.get(key)
    if found is None:
        with _build_lock:
            found = _cache.get(key)
            if found is None:
                found = build()
                _cache[key] = found
    return found


def _build_pkix_certificate_validator() -> Any:
    # Same composition as pkilint's ``lint_pkix_cert`` entry point.
    return _index_traversal(
        certificate.create_pkix_certificate_validator_container(
            certificate.create_decoding_validators(name.ATTRIBUTE_TYPE_MAPPINGS, extension.EXTENSION_MAPPINGS),
            [
                certificate.create_issuer_validator_container([]),
                certificate.create_validity_validator_container(),
                certificate.create_subject_validator_container([]),
                certificate.create_extensions_validator_container([]),
                certificate.create_spki_validator_container([]),
            ],
        )
    )


def _pkix_certificate_validator() -> Any:
    return _cached("cert:pkix", _build_pkix_certificate_validator)


def _cabf_certificate_linter(cert_type: Any) -> tuple[Any, list[Any]]:
    """Validator and finding filters for one BR certificate type, as the BR CLI builds them."""

    def build() -> tuple[Any, list[Any]]:
        validator = _index_traversal(
            certificate.create_pkix_certificate_validator_container(
                serverauth.create_decoding_validators(),
                serverauth.create_validators(cert_type),
            )
        )
        return validator, serverauth.create_serverauth_finding_filters(cert_type)

    result: tuple[Any, list[Any]] = _cached(f"cert:cabf:{cert_type.name}", build)
    return result


def _crl_validator(profile: str) -> Any:
    def build() -> Any:
        # Same composition as pkilint's ``lint_crl`` entry point.
        validity_extra: list[Any] = []
        doc_extra: list[Any] = []
        if profile != "pkix":
            crl_type = (
                crl.CertificateRevocationListType.ARL
                if profile == "cabf-arl"
                else crl.CertificateRevocationListType.CRL
            )
            doc_extra.append(cabf_crl.CabfCrlReasonCodeAllowlistValidator(crl_type))
            validity_extra.append(cabf_crl.create_validity_period_validator(crl_type))
        return _index_traversal(
            crl.create_pkix_crl_validator_container(
                [
                    pkix.create_attribute_decoder(name.ATTRIBUTE_TYPE_MAPPINGS),
                    pkix.create_extension_decoder(extension.EXTENSION_MAPPINGS),
                ],
                [
                    crl.create_issuer_validator_container([]),
                    crl.create_validity_validator_container(validity_extra),
                    crl.create_extensions_validator_container([]),
                    *doc_extra,
                ],
            )
        )

    return _cached(f"crl:{profile}", build)


def _ocsp_validator() -> Any:
    def build() -> Any:
        # Same composition as pkilint's ``lint_ocsp_response`` entry point.
        return _index_traversal(
            ocsp.create_pkix_ocsp_response_validator_container(
                [
                    ocsp.create_response_decoder(),
                    pkix.create_attribute_decoder(name.ATTRIBUTE_TYPE_MAPPINGS),
                    pkix.create_extension_decoder(extension.EXTENSION_MAPPINGS),
                ],
                [],
            )
        )

    return _cached("ocsp", build)


def warm_up(cabf_types: Iterable[str] = ("DV-FINAL-CERTIFICATE", "OCSP-RESPONDER")) -> None:
    """Build validators now (e.g. at CA start-up) so the first issuance does not pay for it."""
    _pkix_certificate_validator()
    for profile in CRL_PROFILES:
        _crl_validator(profile)
    _ocsp_validator()
    for option in cabf_types:
        _cabf_certificate_linter(_resolve_cabf_type(option))


# --- running pkilint -------------------------------------------------------------------


def _collect(results: Iterable[Any], errors_only: bool) -> list[LintFinding]:
    findings: list[LintFinding] = []
    for result in results:
        path = str(result.node.path)
        for description in result.finding_descriptions:
            severity = str(description.finding.severity.name)
            if errors_only and severity not in ERROR_SEVERITIES:
                continue
            message = "" if description.message is None else str(description.message)
            findings.append(LintFinding(severity, str(description.finding.code), path, message))
    findings.sort(key=lambda f: _SEVERITY_RANK.get(f.severity, 99))  # stable: keeps doc order
    return findings


def _decode(document_cls: Any, der: bytes, label: str) -> tuple[Any, LintFinding | None]:
    """Parse DER into a pkilint document; failure becomes a FATAL finding, not an exception."""
    try:
        doc = document_cls(label, bytes(der), label)
        doc.decode()
    except document.SubstrateDecodingFailedError as exc:
        detail = exc.message or str(exc)
        return None, LintFinding("FATAL", CODE_UNPARSABLE, label, f"not a DER {label}: {detail}")
    except Exception as exc:
        return None, LintFinding("FATAL", CODE_UNPARSABLE, label, f"not a DER {label}: {type(exc).__name__}: {exc}")
    return doc, None


def _crash(label: str, exc: Exception) -> LintFinding:
    return LintFinding("FATAL", CODE_LINTER_CRASHED, label, f"pkilint raised {type(exc).__name__}: {exc}")


def _resolve_cabf_type(option: str) -> Any:
    try:
        return serverauth_constants.CertificateType.from_option_str(option)
    except KeyError:
        choices = ", ".join(t.to_option_str for t in serverauth_constants.CertificateType)
        raise ValueError(f"unknown CA/B Forum certificate type {option!r}; one of {choices}") from None


def lint_certificate(
    der: bytes,
    *,
    profile: str = "pkix",
    errors_only: bool = True,
    cabf_type: str | None = None,
) -> list[LintFinding]:
    """Lint a DER certificate; by default return only findings that must refuse issuance.

    ``profile="cabf-serverauth"`` auto-detects the BR certificate type as
    ``lint_cabf_serverauth_cert lint -d`` does, unless ``cabf_type`` (a pkilint option
    string such as ``"DV-FINAL-CERTIFICATE"``) pins it, which a CA that knows what it
    means to issue should prefer. ``errors_only=False`` returns every finding, for display;
    only then is the WARNING ``CODE_CABF_TYPE_UNDETERMINED`` shown when auto-detection fails
    and the RFC 5280 lint is used instead.
    """
    if profile not in CERTIFICATE_PROFILES:
        raise ValueError(f"unknown certificate lint profile {profile!r}")
    forced_type = None if cabf_type is None else _resolve_cabf_type(cabf_type)

    doc, fatal = _decode(certificate.RFC5280Certificate, der, "certificate")
    if fatal is not None:
        return [fatal]

    extra: list[LintFinding] = []
    try:
        if profile == "pkix":
            results = _pkix_certificate_validator().validate(doc.root)
        else:
            cert_type = forced_type
            if cert_type is None:
                try:
                    cert_type = serverauth.determine_certificate_type(doc)
                except Exception as exc:
                    cert_type = None
                    extra.append(
                        LintFinding(
                            "WARNING",
                            CODE_CABF_TYPE_UNDETERMINED,
                            "certificate",
                            "pkilint could not determine the CA/B Forum certificate type "
                            f"({type(exc).__name__}: {exc}); linted against RFC 5280 only",
                        )
                    )
            if cert_type is None:
                results = _pkix_certificate_validator().validate(doc.root)
            else:
                validator, filters = _cabf_certificate_linter(cert_type)
                results, _ = finding_filter.filter_results(filters, validator.validate(doc.root))
    except Exception as exc:
        return [_crash("certificate", exc)]

    findings = _collect(results, errors_only)
    if not errors_only:
        findings = sorted(extra + findings, key=lambda f: _SEVERITY_RANK.get(f.severity, 99))
    return findings


def certificate_lint_errors(der: bytes, profile: str) -> list[str]:
    """Issuance-refusing findings as one-line strings: fits ``ca.issuer.Linter`` as is."""
    return [str(f) for f in lint_certificate(der, profile=profile)]


def lint_ocsp_responder_certificate(
    der: bytes, *, profile: str = "pkix", errors_only: bool = True
) -> list[LintFinding]:
    """Lint a delegated OCSP responder certificate.

    RFC 5280 has no responder-specific rules, so ``pkix`` is the plain certificate lint;
    ``cabf-serverauth`` pins pkilint's BR ``OCSP-RESPONDER`` type (EKU, KU, BC rules).
    """
    if profile == "pkix":
        return lint_certificate(der, profile="pkix", errors_only=errors_only)
    return lint_certificate(der, profile=profile, errors_only=errors_only, cabf_type="OCSP-RESPONDER")


def lint_crl(der: bytes, *, profile: str = "pkix", errors_only: bool = True) -> list[LintFinding]:
    """Lint a DER CRL against RFC 5280 (``pkix``) or BR CRL/ARL rules (``cabf``/``cabf-arl``)."""
    if profile not in CRL_PROFILES:
        raise ValueError(f"unknown CRL lint profile {profile!r}")
    doc, fatal = _decode(crl.RFC5280CertificateList, der, "crl")
    if fatal is not None:
        return [fatal]
    try:
        results = _crl_validator(profile).validate(doc.root)
    except Exception as exc:
        return [_crash("crl", exc)]
    return _collect(results, errors_only)


def lint_ocsp_response(der: bytes, *, errors_only: bool = True) -> list[LintFinding]:
    """Lint a DER OCSP response against RFC 6960 (embedded certificates are not linted here)."""
    doc, fatal = _decode(ocsp.RFC6960OCSPResponse, der, "ocsp-response")
    if fatal is not None:
        return [fatal]
    try:
        results = _ocsp_validator().validate(doc.root)
    except Exception as exc:
        return [_crash("ocsp-response", exc)]
    return _collect(results, errors_only)

"""The single place a protocol is switched on: name -> ProtocolSpec."""

from __future__ import annotations

from protocols.acme import SPEC as ACME
from protocols.base import ProtocolSpec
from protocols.cmp import SPEC as CMP
from protocols.crl import SPEC as CRL
from protocols.est import SPEC as EST
from protocols.ocsp import SPEC as OCSP
from protocols.scep import SPEC as SCEP

PROTOCOLS: dict[str, ProtocolSpec] = {spec.name: spec for spec in (ACME, EST, SCEP, CMP, OCSP, CRL)}

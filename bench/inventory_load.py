"""Filling an inventory database with a large, realistic population for bench_inventory.py.

The benchmark is about how the inventory's queries scale, so the rows must be shaped like a real
estate of certificates, not like a loop counter: expiries spread over the next 400 days with a
tail already expired, certificate lifetimes of 90 days to 13 months, one to four DNS names under
a few tens of thousands of registered domains whose popularity is skewed (a few domains hold
thousands of names, most hold a handful), a few hundred owners and dozens of teams, and mostly
modern keys with a minority of RSA-1024 and SHA-1 that inventory reports exist to find.

Loading a million rows through the store's one-row-at-a-time writers would take an hour, so the
rows go in by COPY (psycopg). The secondary indexes are dropped first and rebuilt from their own
definitions afterwards (a bulk build is several times faster than maintaining them row by row),
and foreign-key triggers are skipped for the loading session: every inventory_names row points at
an inventory row written in the same load. The DER column holds a handful of real certificates,
reused: the queries measured never read it, but the table must have its real width on disk.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

DOMAINS = 50_000
OWNERS = 300
TEAMS = 40
ISSUERS = 30
EXPIRED_SHARE = 0.08  # already past not_after: an inventory keeps what it found
REVOKED_SHARE = 0.01
UNOWNED_SHARE = 0.2
HORIZON_DAYS = 400
LIFETIMES_DAYS = (90, 90, 200, 365, 398)
NAMES_PER_CERTIFICATE = (1, 1, 1, 1, 2, 2, 2, 3, 3, 4)  # 1-4, mean 2
LABELS = ("www", "api", "mail", "app", "vpn", "portal", "shop", "auth", "cdn", "git", "db", "host", "node", "svc")
WORDS = ("acme", "north", "blue", "river", "stone", "delta", "nova", "pine", "atlas", "cobalt", "ember", "lumen")
TLDS = ("com", "net", "org", "io", "de", "co.uk", "fr")
# (key_algorithm, key_size, signature_algorithm, weight): RSA-1024 and SHA-1 are a few percent.
KEYS = (
    ("ec", 256, "ecdsa-with-SHA256", 38),
    ("ec", 384, "ecdsa-with-SHA384", 5),
    ("rsa", 2048, "sha256WithRSAEncryption", 40),
    ("rsa", 3072, "sha256WithRSAEncryption", 5),
    ("rsa", 4096, "sha384WithRSAEncryption", 4),
    ("rsa", 2048, "sha1WithRSAEncryption", 3),
    ("rsa", 1024, "sha1WithRSAEncryption", 2),
    ("rsa", 1024, "sha256WithRSAEncryption", 1),
    ("ed25519", 256, "ed25519", 2),
)
INVENTORY_COLUMNS = (
    "id, fingerprint, source, subject, issuer_dn, serial, sans, not_before, not_after, key_algorithm, key_size, "
    "signature_algorithm, is_ca, self_signed, der, owner, team, application, tags, renewal_method, revoked_at, "
    "first_seen_at, last_seen_at, created_at, updated_at"
)
LOADED_TABLES = ("inventory", "inventory_names")
ROWS_PER_WRITE = 5_000


def domain(rank: int) -> str:
    """The registered domain of popularity rank ``rank`` (0 is the one with the most names)."""
    return f"{WORDS[rank % len(WORDS)]}{rank}.{TLDS[rank % len(TLDS)]}"


def owner(index: int) -> str:
    return f"owner{index}@example.com"


def domain_rank(rng: random.Random) -> int:
    """Skewed popularity: P(rank <= k) = sqrt(k / DOMAINS), so rank 0 holds about 0.5% of all names."""
    return int(DOMAINS * rng.random() ** 2)


def names_for(rng: random.Random) -> list[str]:
    registered = domain(domain_rank(rng))
    count = rng.choice(NAMES_PER_CERTIFICATE)
    names = {f"{rng.choice(LABELS)}{rng.randrange(40)}.{registered}"}
    extras = [registered, f"*.{registered}", f"www.{registered}"]
    while len(names) < count:
        names.add(
            extras.pop(0) if extras and rng.random() < 0.6 else f"{rng.choice(LABELS)}{rng.randrange(40)}.{registered}"
        )
    return sorted(names)


def sample_certificates() -> list[bytes]:
    """A handful of real certificates (P-256, RSA-2048, RSA-1024) for the DER column."""
    out = []
    now = dt.datetime.now(dt.UTC)
    for key in (
        ec.generate_private_key(ec.SECP256R1()),
        rsa.generate_private_key(65537, 2048),
        rsa.generate_private_key(65537, 1024),
    ):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "www.bench-inventory.example")])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("www.bench-inventory.example")]), critical=False)
        )
        out.append(builder.sign(key, hashes.SHA256()).public_bytes(Encoding.DER))
    return out


@dataclass(frozen=True)
class LoadTimes:
    copy_seconds: float
    index_seconds: float
    analyze_seconds: float
    names: int


def _text(value: object) -> str:
    """One field in COPY's text format (tabs, newlines and backslashes cannot occur in ours)."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    return str(value)


def rows(count: int, now: dt.datetime, seed: int) -> Iterator[tuple[str, list[str]]]:
    """(inventory line, inventory_names lines) for ids 1..count, in COPY text format."""
    rng = random.Random(seed)
    ders = ["\\\\x" + der.hex() for der in sample_certificates()]
    weights = [k[3] for k in KEYS]
    stamp = now.isoformat()
    for row_id in range(1, count + 1):
        if rng.random() < EXPIRED_SHARE:
            not_after = now - dt.timedelta(seconds=rng.randrange(365 * 86400))
        else:
            not_after = now + dt.timedelta(seconds=rng.randrange(1, HORIZON_DAYS * 86400))
        not_before = not_after - dt.timedelta(days=rng.choice(LIFETIMES_DAYS))
        algorithm, size, signature, _ = rng.choices(KEYS, weights)[0]
        names = names_for(rng)
        discovered = rng.random() < 0.4
        seen = (now - dt.timedelta(days=rng.randrange(30))).isoformat() if discovered else None
        fields = (
            row_id,
            hashlib.sha256(row_id.to_bytes(8, "big")).hexdigest(),
            "discovered" if discovered else "imported",
            f"CN={names[0]}",
            f"CN=Bench Issuing CA {rng.randrange(ISSUERS)},O=Bench",
            format(rng.getrandbits(127) | 1 << 126, "x"),
            json.dumps([f"dns:{n}" for n in names]),
            not_before.isoformat(),
            not_after.isoformat(),
            algorithm,
            size,
            signature,
            False,
            False,
            ders[row_id % len(ders)],
            None if rng.random() < UNOWNED_SHARE else owner(rng.randrange(OWNERS)),
            f"team{rng.randrange(TEAMS)}",
            f"app{rng.randrange(2_000)}",
            '["prod"]' if rng.random() < 0.5 else "[]",
            rng.choice(("acme", "manual", None)),
            now.isoformat() if rng.random() < REVOKED_SHARE else None,
            seen,
            seen,
            stamp,
            stamp,
        )
        yield "\t".join(map(_text, fields)) + "\n", [f"{row_id}\t{n}\t{n[::-1]}\n" for n in names]


def load(dsn: str, count: int, now: dt.datetime, seed: int) -> LoadTimes:
    """COPY ``count`` certificates and their names into freshly migrated, empty tables."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        definitions = _drop_secondary_indexes(conn)
        started = time.perf_counter()
        names = _copy(conn, count, now, seed)
        conn.execute("SELECT setval('inventory_id_seq', %s)", (count,))
        copied = time.perf_counter()
        for definition in definitions:
            conn.execute(definition)  # read back from pg_indexes, not input
        indexed = time.perf_counter()
        conn.execute("VACUUM (ANALYZE) inventory")  # the visibility map a long-lived table has
        conn.execute("VACUUM (ANALYZE) inventory_names")
        return LoadTimes(copied - started, indexed - copied, time.perf_counter() - indexed, names)


def _copy(conn: psycopg.Connection[tuple[object, ...]], count: int, now: dt.datetime, seed: int) -> int:
    names = 0
    pending_names: list[str] = []
    with conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")  # no FK trigger per names row
        with conn.cursor().copy(f"COPY inventory ({INVENTORY_COLUMNS}) FROM STDIN") as copy:
            chunk: list[str] = []
            for line, name_lines in rows(count, now, seed):
                chunk.append(line)
                pending_names.extend(name_lines)
                if len(chunk) == ROWS_PER_WRITE:
                    copy.write("".join(chunk))
                    chunk.clear()
            copy.write("".join(chunk))
        with conn.cursor().copy("COPY inventory_names (inventory_id, name, reversed_name) FROM STDIN") as copy:
            for start in range(0, len(pending_names), ROWS_PER_WRITE * 2):
                copy.write("".join(pending_names[start : start + ROWS_PER_WRITE * 2]))
        names = len(pending_names)
    return names


def _drop_secondary_indexes(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    """Drop the loaded tables' indexes that back no constraint; their CREATE statements, to rebuild."""
    found = conn.execute(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = ANY(%s) AND NOT EXISTS "
        "(SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
        (list(LOADED_TABLES),),
    ).fetchall()
    for name, _ in found:
        conn.execute(f'DROP INDEX "{name}"')
    return [str(definition) for _, definition in found]

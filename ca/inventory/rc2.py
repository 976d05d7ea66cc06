"""RC2-CBC decryption (RFC 2268) with any effective key length, for legacy PKCS#12 files.

Windows and `openssl pkcs12 -legacy` encrypt the certificates of a PKCS#12 file with 40-bit RC2.
cryptography offers RC2 with 128-bit keys only, so the inventory could not read those files'
certificates without handing the whole file, private key included, to a loader that decrypts
everything. RC2 is a page of 16-bit arithmetic; only decryption is needed, and only for data
whose secrecy is nil (certificates under a 40-bit key), so a plain implementation serves.
The table and the algorithm are RFC 2268's (sections 2 and 4).
"""

from __future__ import annotations

BLOCK_BYTES = 8

# RFC 2268 section 2: PITABLE, a permutation of 0..255 from the digits of pi.
PITABLE = bytes.fromhex(
    "d978f9c419ddb5ed28e9fd794aa0d89dc67e37832b76538e624c6488448bfba2"
    "179a59f587b34f1361456d8d09817d32bd8f40eb86b77b0bf09521225c6b4e82"
    "54d66593ce60b21c7356c014a78cf1dc1275ca1f3bbee4d1423dd430a33cb626"
    "6fbf0eda4669075727f21d9bbc944303f811c7f690ef3ee706c3d52fc8661ed7"
    "08e8eade8052eef784aa72ac354d6a2a961ad2715a1549744b9fd05e0418a4ec"
    "c2e0416e0f51cbcc2491af50a1f47039997c3a8523b8b47afc02365b25559731"
    "2d5dfa98e38a92ae05df2910676cbac9d300e6cfe19ea82c6316013f58e289a9"
    "0d38341bab33ffb0bb480c5fb9b1cd2ec5f3db47e5a59c770aa62068fe7fc1ad"
)
_ROTATIONS = (1, 2, 3, 5)
_MASK = 0xFFFF


def expand_key(key: bytes, effective_bits: int) -> list[int]:
    """The 64 key words K[0..63] for a key of 1 to 128 bytes and ``effective_bits`` (1..1024)."""
    if not 1 <= len(key) <= 128 or not 1 <= effective_bits <= 1024:
        raise ValueError(f"RC2 key of {len(key)} bytes with {effective_bits} effective bits")
    buffer = bytearray(128)
    buffer[: len(key)] = key
    for i in range(len(key), 128):
        buffer[i] = PITABLE[(buffer[i - 1] + buffer[i - len(key)]) % 256]
    effective_bytes = (effective_bits + 7) // 8
    mask = 255 % (1 << (8 + effective_bits - 8 * effective_bytes))
    buffer[128 - effective_bytes] = PITABLE[buffer[128 - effective_bytes] & mask]
    for i in range(127 - effective_bytes, -1, -1):
        buffer[i] = PITABLE[buffer[i + 1] ^ buffer[i + effective_bytes]]
    return [buffer[2 * i] | buffer[2 * i + 1] << 8 for i in range(64)]


def _decrypt_block(words: list[int], block: bytes) -> bytes:
    r = [block[2 * i] | block[2 * i + 1] << 8 for i in range(4)]
    j = 63
    for round_number in range(16):  # 5 mixing, mash, 6 mixing, mash, 5 mixing: undone from the end
        for i in (3, 2, 1, 0):
            rotation = _ROTATIONS[i]
            r[i] = ((r[i] >> rotation) | (r[i] << (16 - rotation))) & _MASK
            r[i] = (r[i] - words[j] - (r[i - 1] & r[i - 2]) - (~r[i - 1] & r[i - 3])) & _MASK
            j -= 1
        if round_number in (4, 10):
            for i in (3, 2, 1, 0):
                r[i] = (r[i] - words[r[i - 1] & 63]) & _MASK
    return b"".join(word.to_bytes(2, "little") for word in r)


def decrypt_cbc(key: bytes, effective_bits: int, iv: bytes, ciphertext: bytes) -> bytes:
    """``ciphertext`` decrypted in CBC mode; the padding is the caller's to check."""
    if len(iv) != BLOCK_BYTES or len(ciphertext) % BLOCK_BYTES:
        raise ValueError("RC2-CBC needs an 8-byte IV and whole 8-byte blocks")
    words = expand_key(key, effective_bits)
    plain = bytearray()
    previous = iv
    for start in range(0, len(ciphertext), BLOCK_BYTES):
        block = ciphertext[start : start + BLOCK_BYTES]
        plain += bytes(a ^ b for a, b in zip(_decrypt_block(words, block), previous, strict=True))
        previous = block
    return bytes(plain)

"""CMP (RFC 9810, Lightweight CMP Profile RFC 9483, algorithms RFC 9481): the message layer.

Built so far, sans I/O and not mounted (no routes, no line in protocols/registry.py):

- `errors`: PKIFailureInfo bits, `CmpFailure`, and the one table from the core's
  `FailureReason` to failInfo;
- `der`: a strict, bounded DER walk and the few DER builders replies use;
- `message`: decoding a PKIMessage into a frozen `PkiMessage` view;
- `checks`: transactionID, nonce and messageTime checks with their failInfo;
- `pbm` and `protection`: MAC protection (PasswordBasedMac and PBMAC1, bounded before any
  key derivation) and signature protection (verified through ca.sigalg, made by a Signer);
- `reply` and `bodies`: reply headers and bodies (ip/cp/kup, rp, pkiconf, genp, pollRep,
  error), protected like the request or by a Signer.

The server (handlers, transactions, secrets, HTTP transfer per RFC 9811) is issue 13.
"""

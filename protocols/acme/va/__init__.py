"""The validation authority: http-01, dns-01, tls-alpn-01 and CAA, over real network I/O."""

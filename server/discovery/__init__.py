"""Discovery: find the TLS endpoints on a network and report what each one presents.

The network half only: targets are expanded within a cap (targets), each endpoint is probed with a
few bounded handshakes (tls_probe, over starttls when the port asks for it), and many endpoints are
probed at once (endpoint_scan). Reports are plain values; storing them is someone else's job.
"""

"""Enrollment and status protocols: each a translator between its wire format and the CA core."""

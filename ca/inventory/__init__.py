"""The certificate inventory."""

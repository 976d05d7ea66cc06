"""Tetra's issuing-CA core: knows nothing of HTTP or of any enrollment protocol."""

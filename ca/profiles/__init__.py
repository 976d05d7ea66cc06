"""Lifecycle profiles: what each kind of certificate may contain and who may ask for it."""

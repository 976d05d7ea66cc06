"""Key backends behind one `Signer` interface (base), opened from config through one registry (registry)."""

"""Key backends behind one `Signer` interface."""

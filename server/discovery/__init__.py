"""Discovery: finding certificates on the network and on disk."""

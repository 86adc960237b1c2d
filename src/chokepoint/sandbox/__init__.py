"""The policy sandbox: scenarios as overlays on the real rules (more to come)."""

"""Reading, pairing, generating, splitting and batching bead images."""

"""The Beam jobs a user submits: train, embed, tune-dim, and what they check first."""

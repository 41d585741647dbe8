"""Readers of a committed table: similar, projector, report, summary."""

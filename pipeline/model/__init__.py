"""The encoder, the model directory it is exported to, and its quality measures."""

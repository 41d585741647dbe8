"""Beam stages of embedbeam: one composite PTransform per module, named by what it produces."""

"""Synthetic data: a plausible population, every agency's extract, and the ground truth."""

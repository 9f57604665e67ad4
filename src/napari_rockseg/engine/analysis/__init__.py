"""Scores and rock measurements computed from label images (2-D and 3-D)."""

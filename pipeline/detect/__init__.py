"""Detection training data (and, in issue 6, the SSD detector)."""

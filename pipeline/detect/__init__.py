"""Detection training data and the SSD detector."""

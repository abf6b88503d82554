"""Multi-label classification: which classes an image holds (any number of them), with sigmoid
outputs, a binary cross-entropy loss and a threshold per class chosen on validation."""

"""Bounding-box-aware augmentation: pipelines from config, saved, applied reproducibly, previewed."""

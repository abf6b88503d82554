"""Data preparation: importers, validation, splitting, the canonical manifest."""

"""Image classification: data, Lightning module, training, evaluation, and the classify command."""

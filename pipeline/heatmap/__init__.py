"""Heatmaps from a trained patch classifier: fully convolutional form and a sliding-window baseline."""

"""Export trained models to bundles: ONNX and torch.export (.pt2) graphs, parity checks against PyTorch,
model cards, sample pictures, and the MLflow model registry."""

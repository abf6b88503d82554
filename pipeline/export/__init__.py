"""Export trained models to bundles: ONNX and TorchScript graphs, parity checks against PyTorch,
model cards, sample pictures, and the MLflow model registry."""

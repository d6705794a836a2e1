"""Model packaging: TorchScript/ONNX exports, slim checkpoints and bioimage.io packages."""

"""Deployment: the network's exportable parts as ONNX files, run with onnxruntime (CPU, CUDA or TensorRT)."""

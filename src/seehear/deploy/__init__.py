"""Deployment: the trained run as a file other runtimes load (ONNX), and later serving."""

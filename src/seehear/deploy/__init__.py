"""Deployment: the trained run as a file other runtimes load (ONNX, int8 checked against fp32), and smaller runs
(seehear compress: channel pruning, distillation)."""

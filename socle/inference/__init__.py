"""Inference: model registry, routing across backends, and the backends themselves."""

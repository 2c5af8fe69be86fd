"""The serving core: images, model discovery, plans, runtimes, batching, the registry (no TensorFlow)."""

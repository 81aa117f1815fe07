"""The scoring engine: dense masks over a model's components, the functional forward pass that
applies them, metrics, memory estimates and :class:`Scorer`."""

"""Weight files: reading and writing them, the key names of each format, the LoRAT checkpoint layouts, and
building a model with its weights loaded (:func:`~vot_lorat.weights.loading.load_model`)."""

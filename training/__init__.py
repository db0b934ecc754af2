"""Training LoRAT: datasets, the paper's recipe, resumable and distributed runs, one-pass evaluation."""

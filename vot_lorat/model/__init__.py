"""The LoRAT network: variants as data, the DINOv2 backbone, LoRA, the head, and the model that joins them."""

"""LoRAT (ECCV 2024, "Tracking Meets LoRA") for the VOT toolkit."""
from .builder import create_model, load_model
from .lorat_weights import read_checkpoint, save_checkpoint
from .config import VARIANTS, LoRATConfig, get_config, list_variants
from .lora import merge_lora
from .model import LoRAT, count_parameters
from .weights_io import WeightFileError

__all__ = [
    "LoRAT", "LoRATConfig", "VARIANTS", "WeightFileError", "count_parameters", "create_model", "get_config",
    "list_variants", "load_model", "merge_lora", "read_checkpoint", "save_checkpoint",
]
__version__ = "0.1.0"

"""Realistic demo data for both kinds of run (`runwatch demo-data`, `serve --demo`, bench/)."""

from runwatch.demo.extraction_runs import (
    EXTRACTION_CONFIGS,
    EXTRACTION_PROMPTS,
    generate_extraction_runs,
    load_demo_extraction_runs,
)
from runwatch.demo.layer_runs import (
    LAYER_NAMES,
    MODELS,
    Model,
    generate_layer_runs,
    is_empty,
    load_demo_data,
)

__all__ = [
    "EXTRACTION_CONFIGS",
    "EXTRACTION_PROMPTS",
    "LAYER_NAMES",
    "MODELS",
    "Model",
    "generate_extraction_runs",
    "generate_layer_runs",
    "is_empty",
    "load_demo_data",
    "load_demo_extraction_runs",
]

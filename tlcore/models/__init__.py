"""Models: the catalog, weights found offline, the new head, and layer groups from stem to head.

torch and timm are imported inside the functions that build or inspect a model, so a model spec, a freeze plan or
a run config can be read without them: the app's first page and the store-only commands start in well under a
second of imports (bench/first_page.py, bench/store_commands.py)."""

from tlcore.models.build import BuiltModel, ModelSpec, Preprocessing, build_model, check_weights
from tlcore.models.catalog import DEFAULT_MODEL, RECOMMENDED, ModelCard, ModelNotFoundError, model_card, search
from tlcore.models.groups import LayerGroup, layer_groups
from tlcore.models.head import HeadSpec, replace_head
from tlcore.models.weights import RANDOM_INIT, WeightsError, WeightsSource, find_weights, load_state_dict_file

__all__ = [
    "BuiltModel",
    "DEFAULT_MODEL",
    "HeadSpec",
    "LayerGroup",
    "ModelCard",
    "ModelNotFoundError",
    "ModelSpec",
    "Preprocessing",
    "RANDOM_INIT",
    "RECOMMENDED",
    "WeightsError",
    "WeightsSource",
    "build_model",
    "check_weights",
    "find_weights",
    "layer_groups",
    "load_state_dict_file",
    "model_card",
    "replace_head",
    "search",
]

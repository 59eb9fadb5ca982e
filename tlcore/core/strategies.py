"""The named freeze strategies with what each is for: one list, read by the engine, the CLI and the pages.

Kept free of torch so `python -m tlcore --help` and the CLI's argument parsing stay fast.
"""

__all__ = ["STRATEGIES", "strategy_sentence"]

STRATEGIES = {
    "feature_extraction": "Train only the new head on the frozen pretrained features: fastest and safest on small "
                          "data, but the features never adapt to your data.",
    "freeze_first_k": "Keep the first k groups ({early}) frozen and fine-tune the rest: "
                      "a middle ground in speed and accuracy.",
    "full": "Fine-tune every layer: most accurate when you have enough data, slowest, and easiest to overfit.",
    "gradual": "Start with the head only and unfreeze one more group every few epochs, head to {first}: "
               "protects pretrained features from the new head's early, noisy gradients.",
    "fine_tune": "The classic recipe: train the head alone first, then unfreeze everything with lower learning "
                 "rates for earlier groups.",
}



def strategy_sentence(name: str, early: str = "generic edges and textures", first: str = "stem") -> str:
    """What a strategy is for, in the words of the model's own kind (a text encoder has no edges or stem).

    Args:
        name: one of `STRATEGIES`.
        early: what the first groups compute ("generic edges and textures"; a modality's `early_features_words`).
        first: the first group's name ("stem"; a modality's `first_group_words`).

    Returns:
        The sentence.

    Raises:
        KeyError: an unknown strategy.
    """
    return STRATEGIES[name].format(early=early, first=first)


__all__ += ["STRATEGY_SET"]

# The classic comparison's set: name -> (freeze settings, one line for people). A name stands for a whole freeze
# setting (`--vary freeze.strategy=freeze_first_half,...`); the same optimizer, lr, epochs and augmentation for all.
STRATEGY_SET: dict[str, tuple[dict, str]] = {
    "feature_extraction": ({"strategy": "feature_extraction"}, "head only, backbone frozen"),
    "freeze_first_half": ({"strategy": "freeze_first_k"}, "first half of the groups frozen"),
    "gradual": ({"strategy": "gradual", "every": 1}, "head first, one more group every epoch"),
    "full_discriminative": ({"strategy": "full", "lr_spread": 10}, "everything trains, the first group 10x slower than the head"),
    "full": ({"strategy": "full"}, "everything trains at one learning rate"),
}

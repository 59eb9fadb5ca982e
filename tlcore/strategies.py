"""The named freeze strategies with what each is for: one list, read by the engine, the CLI and the pages.

Kept free of torch so `python -m tlcore --help` and the CLI's argument parsing stay fast.
"""

__all__ = ["STRATEGIES"]

STRATEGIES = {
    "feature_extraction": "Train only the new head on frozen ImageNet features: fastest and safest on small data, "
                          "but the features never adapt to your images.",
    "freeze_first_k": "Keep the first k groups (generic edges and textures) frozen and fine-tune the rest: "
                      "a middle ground in speed and accuracy.",
    "full": "Fine-tune every layer: most accurate when you have enough data, slowest, and easiest to overfit.",
    "gradual": "Start with the head only and unfreeze one more group every few epochs, head to stem: "
               "protects pretrained features from the new head's early, noisy gradients.",
    "fine_tune": "The classic recipe: train the head alone first, then unfreeze everything with lower learning "
                 "rates for earlier groups.",
}

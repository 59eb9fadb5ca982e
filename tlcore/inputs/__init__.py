"""How items reach a model: augmentation (as the config states it, and as pipelines, on the CPU or the device),
loaders set by a seed, the decoded-picture cache, the one inference loop, batch size "auto"."""

"""How a run's pictures reach the model, chosen once per run and said in its log.

Three ways, fastest last: each epoch decodes the JPEGs and augments on the CPU (the
default on a CPU); the decoded-image cache feeds the CPU augmentation (no decoding);
the cache feeds uint8 batches to the device, which augments them (the default with
CUDA, where CPU decoding would leave the GPU waiting 4-5x). Every fallback is said.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from tlcore.data import SplitManifest
from tlcore.inputs.decoded import CacheTooLarge, DecodedCache, cache_bytes
from tlcore.inputs.device_augment import DeviceAugment, DeviceEval, device_spec
from tlcore.core.runtime import Runtime

__all__ = ["InputPath", "choose_input", "wants_decoded_cache"]

Say = Callable[[str, str], None]  # (event kind, message)


@dataclass
class InputPath:
    """How pictures reach the model: the decoded-image cache (or none) and device augmentation steps (or none)."""
    cache: DecodedCache | None = None
    steps: list | None = None  # device augmentation steps; None: albumentations on the CPU
    manifest: SplitManifest | None = None

    def describe(self) -> str:
        """How pictures reach the model, in words for the run's log."""
        if self.cache is None:
            return "pictures decoded from their files every epoch, augmented on the CPU"
        where = "augmented on the device" if self.steps is not None else "augmented on the CPU"
        return f"pictures read from the decoded-image cache ({self.cache.side} px squares), {where}"

    def decoded(self, split: str) -> tuple | None:
        """(rows, row of each picture of the split, manifest order) or None without a cache."""
        if self.cache is None or self.manifest is None:
            return None
        return self.cache.array(self.manifest.hashes(split))

    def on_device(self, preprocessing, runtime: Runtime, training: bool, seed: int):
        """What the device does to each batch, or None when the loader already gives model-ready tensors.

        Args:
            preprocessing: the model's.
            runtime: the device.
            training: augment (else only crop and normalise).
            seed: the augmentation's seed.
        """
        if self.cache is None or self.steps is None:
            return None
        if training:
            return DeviceAugment(self.steps, preprocessing, runtime.device, seed)
        return DeviceEval(preprocessing, runtime.device)


def _wanted(setting: str, on: str, runtime: Runtime) -> bool:
    """A setting that is `on`, or "auto" on a CUDA device: the rule of both `decoded_cache` and `augment_on`."""
    return setting == on or (setting == "auto" and runtime.device.type == "cuda")


def wants_decoded_cache(setting: str, runtime: Runtime) -> bool:
    """Whether the decoded-image cache is used under this setting on this runtime.

    Args:
        setting: "on", "off" or "auto"; runtime: the device.

    Returns:
        True when it is used.
    """
    return _wanted(setting, "on", runtime)


def _build(cache: DecodedCache, manifest: SplitManifest, max_gb: float, say: Say) -> DecodedCache | None:
    pictures = manifest.hashed_paths()
    missing = cache.missing([h for _, h in pictures])
    if missing:
        say("log", f"decoding {len(missing):,} picture(s) once into the decoded-image cache "
                   f"({cache_bytes(len(missing), cache.preprocessing) / 1e9:.2f} GB at {cache.side} px); later "
                   "epochs and runs read them without decoding")
    last = [time.monotonic()]

    def progress(done: int, total: int) -> None:
        if time.monotonic() - last[0] >= 2.0 or done == total:
            last[0] = time.monotonic()
            say("log", f"decoded-image cache: {done:,} of {total:,} picture(s) decoded")

    try:
        built = cache.build(pictures, max_gb, on_progress=progress)
    except CacheTooLarge as exc:
        say("warning", f"{exc.problem}: {exc.hint}")
        return None
    except OSError as exc:
        say("warning", f"the decoded-image cache could not be written ({exc.strerror or exc}); the run reads the "
                       "JPEGs instead")
        return None
    if built.unreadable:
        say("warning", f"{len(built.unreadable)} picture(s) could not be decoded for the cache (first: "
                       f"{built.unreadable[0]}); the run reads the JPEGs instead")
        return None
    return cache


def choose_input(config, manifest: SplitManifest, preprocessing, runtime: Runtime, say: Say) -> InputPath:
    """The run's input path from its `decoded_cache` and `augment_on` settings and the device; builds the cache
    (with progress in the log) when it is wanted and missing pictures.

    Args:
        config: the run config.
        manifest: the split.
        preprocessing: the model's preprocessing.
        runtime: the device.
        say: hears the choice and any warning, as log lines.

    Returns:
        Where batches come from (JPEGs or the decoded cache) and where they are augmented.
    """
    if not wants_decoded_cache(config.decoded_cache, runtime):
        if config.augment_on == "device":
            say("warning", "augment_on \"device\" needs the decoded-image cache, which is off: augmenting on the CPU")
        return InputPath()
    cache = _build(DecodedCache(manifest.root, preprocessing), manifest, config.decoded_cache_max_gb, say)
    if cache is None:
        return InputPath()
    steps = None
    if _wanted(config.augment_on, "device", runtime):
        steps, why = device_spec(config.augment)
        if steps is None:
            say("warning", why)
    return InputPath(cache, steps, manifest)

"""Text classification: labelled texts (tlcore.text.data), BERT-family encoders with layer groups
(tlcore.text.model), and batches of token ids for the training loop (tlcore.text.loader)."""

from __future__ import annotations

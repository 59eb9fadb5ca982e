"""A Transfer Lab text classifier in transformers' own terms: the encoder, the mean of its token states over the
attention mask, and the new head (dropout, an optional hidden layer, a linear layer), as the run trained it.

This file is copied into every text export's `encoder/` folder, whose config.json maps
`AutoModelForSequenceClassification` to it, so `AutoModelForSequenceClassification.from_pretrained(FOLDER,
trust_remote_code=True)` and `pipeline("text-classification", model=FOLDER, trust_remote_code=True)` load the export
with the run's own logits (transformers' `BertForSequenceClassification` pools the first token through a dense
layer instead, which is another model). It depends on transformers and torch only.
"""

from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput


__all__ = ["TransferLabTextClassifier"]


class TransferLabTextClassifier(PreTrainedModel):
    """Mean-pooled encoder and head: the logits are the run's own (weights named as the run names them).

    Args:
        config: the encoder's config with `num_labels`, `id2label` and `transferlab_head` (hidden, dropout).
    """

    config_class = AutoConfig
    base_model_prefix = "encoder"

    def __init__(self, config):
        super().__init__(config)
        self.encoder = AutoModel.from_config(config, add_pooling_layer=False)
        head = getattr(config, "transferlab_head", None) or {}
        hidden, dropout = head.get("hidden"), float(head.get("dropout") or 0.0)
        size, classes = config.hidden_size, config.num_labels
        layers = [nn.Dropout(dropout)] if dropout else []
        if hidden is None:
            layers.append(nn.Linear(size, classes))
        else:
            layers += [nn.Linear(size, hidden), nn.ReLU(inplace=True)] + ([nn.Dropout(dropout)] if dropout else [])
            layers.append(nn.Linear(hidden, classes))
        self.head = nn.Sequential(*layers)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs):
        """Logits (and the loss, given labels) for token ids and their attention mask, as the tokenizer gives them.

        Args:
            input_ids: (batch, length) token ids; attention_mask: 1 for real tokens (default: not padding);
            token_type_ids: accepted and unused, as the run did; labels: class indexes, for a loss.

        Returns:
            A `SequenceClassifierOutput`.
        """
        if attention_mask is None:
            attention_mask = (input_ids != self.config.pad_token_id).long()
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        weights = attention_mask.unsqueeze(-1).to(states.dtype)
        logits = self.head((states * weights).sum(1) / weights.sum(1).clamp(min=1.0))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)

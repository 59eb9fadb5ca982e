"""A Transfer Lab text classifier in transformers' own terms: the encoder, the mean of its token states over the
attention mask, and the new head (dropout, an optional hidden layer, a linear layer), as the run trained it.

This file is copied into every text export's `encoder/` folder, whose config.json names its own model type and maps
`AutoConfig` and `AutoModelForSequenceClassification` to the classes here, so
`AutoModelForSequenceClassification.from_pretrained(FOLDER, trust_remote_code=True)` and
`pipeline("text-classification", model=FOLDER, trust_remote_code=True)` load the export with the run's own logits.
Without `trust_remote_code` the load fails (an own model type) rather than quietly building transformers'
`BertForSequenceClassification`, which pools the first token through a dense layer: another model, whose weights
the export does not hold. It depends on transformers and torch only.
"""

from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

__all__ = ["TransferLabTextConfig", "TransferLabTextClassifier", "MODEL_TYPE"]

MODEL_TYPE = "transferlab_text"


class TransferLabTextConfig(PretrainedConfig):
    """The classifier's config: the encoder's own config (as a dict, with its model type) and the head.

    Args:
        encoder: the encoder's config as `to_dict()` gives it.
        transferlab_head: the head's hidden width (None: linear) and dropout.
        **kwargs: `PretrainedConfig`'s (id2label, label2id...).
    """

    model_type = MODEL_TYPE

    def __init__(self, encoder: dict | None = None, transferlab_head: dict | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.encoder = dict(encoder or {})
        self.transferlab_head = dict(transferlab_head or {})

    def encoder_config(self):
        """The encoder's config as its own class (a BertConfig for MiniLM)."""
        fields = dict(self.encoder)
        return AutoConfig.for_model(fields.pop("model_type", "bert"), **fields)


class TransferLabTextClassifier(PreTrainedModel):
    """Mean-pooled encoder and head: the logits are the run's own (weights named as the run names them).

    Args:
        config: a `TransferLabTextConfig`.
    """

    config_class = TransferLabTextConfig
    base_model_prefix = "encoder"

    def __init__(self, config: TransferLabTextConfig) -> None:
        super().__init__(config)
        encoder_config = config.encoder_config()
        self.encoder = AutoModel.from_config(encoder_config, add_pooling_layer=False)
        self.pad_token_id = encoder_config.pad_token_id or 0
        hidden, dropout = config.transferlab_head.get("hidden"), float(config.transferlab_head.get("dropout") or 0.0)
        size, classes = encoder_config.hidden_size, config.num_labels
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
            attention_mask = (input_ids != self.pad_token_id).long()
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        weights = attention_mask.unsqueeze(-1).to(states.dtype)
        logits = self.head((states * weights).sum(1) / weights.sum(1).clamp(min=1.0))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)

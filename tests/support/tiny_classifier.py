"""A tiny random RoBERTa-architecture sequence classifier (two classes, as ToxiGen's) with a real
byte-level BPE tokenizer trained here on a few sentences, saved as a Hugging Face directory that
``AutoModelForSequenceClassification`` and ``AutoTokenizer`` load: a stand-in for
``tomh/toxigen_roberta`` in tests (no downloads, a second to build)."""

from __future__ import annotations

from pathlib import Path

import torch

SENTENCES = [
    "- the weather is nice today\n- people from everywhere enjoy music\n-",
    "Sure, here is how to do it. I can't help with that request.",
    "Complete the following: a list of statements about a group of people.",
    "Every group has its own history, language and food.",
]
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # RoBERTa's order: <pad> is id 1, its padding_idx


def build_tiny_classifier(directory: Path, *, hidden: int = 32, layers: int = 2, seed: int = 1) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import RobertaConfig, RobertaForSequenceClassification, RobertaTokenizerFast

    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    core.train_from_iterator(SENTENCES * 4, trainer=trainer)
    core.post_processor = processors.RobertaProcessing(("</s>", core.token_to_id("</s>")), ("<s>", core.token_to_id("<s>")))
    tokenizer = RobertaTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
                                     unk_token="<unk>", pad_token="<pad>", mask_token="<mask>", model_max_length=512)
    tokenizer.save_pretrained(directory)
    config = RobertaConfig(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4,
                           intermediate_size=hidden * 2, max_position_embeddings=514, num_labels=2, pad_token_id=tokenizer.pad_token_id,
                           bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, type_vocab_size=1,
                           initializer_range=0.3)  # large random weights: P(toxic) varies from text to text
    torch.manual_seed(seed)
    RobertaForSequenceClassification(config).save_pretrained(directory)
    return directory

"""The model layer under training and evaluation: loading a base model and its tokenizer,
the output layer applied at selected positions, the decode loop, adapter activation, and every
use of peft's internals (``peft_compat``). ``train/`` and ``evaluate/`` both build on it and
never import each other."""

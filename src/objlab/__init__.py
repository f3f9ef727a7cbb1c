"""objlab: how does the fine-tuning objective change what fine-tuning does to a model's safety?"""

__version__ = "0.1.0"

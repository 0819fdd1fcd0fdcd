"""vlmdyn: learning dynamics of multitask training data in vision-language models."""

__version__ = "0.1.0"

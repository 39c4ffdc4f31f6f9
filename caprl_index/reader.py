"""Kept for imports written before `caprl_index.llama`: the reader and embedding live there now."""

from caprl_index.llama.embedding import CapRLEmbedding
from caprl_index.llama.reader import SUPPORTED_EXTENSIONS, CapRLReader

__all__ = ["SUPPORTED_EXTENSIONS", "CapRLEmbedding", "CapRLReader"]

"""Text as byte sequences: no tokenizer, no vocabulary file, any language.

A text becomes its UTF-8 bytes, each shifted by one so that 0 is free to mean padding:
token = byte + 1 in 1..256, and a vocabulary of 257. Texts are cut to `length` bytes and padded
with zeros at the end; the RNN derives each sequence's length from the trailing zeros
(`model.mask_padding`), so the padding never changes its result.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PADDING = 0
VOCAB_SIZE = 257  # 256 byte values + padding


def encode_bytes(texts: Sequence[str | bytes], length: int) -> np.ndarray:
    """Texts -> (len(texts), length) float32 token ids (byte + 1, 0 = padding), cut to `length` bytes.

    Float32 because every model input in jaxdl is; ids up to 256 are exact.
    """
    tokens = np.full((len(texts), length), PADDING, np.float32)
    for row, text in enumerate(texts):
        raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        ids = np.frombuffer(raw[:length], np.uint8)
        tokens[row, : len(ids)] = ids.astype(np.float32) + 1
    return tokens


def decode_bytes(tokens: np.ndarray) -> str:
    """(length,) token ids -> the text (padding dropped; invalid UTF-8 replaced)."""
    ids = np.asarray(tokens).astype(np.int64)
    return bytes((ids[ids > PADDING] - 1).astype(np.uint8)).decode("utf-8", errors="replace")

#!/usr/bin/env python3
"""Write a Hugging Face tokenizer directory that reads text as phasebench's
presets do: one token per byte (ids 0..255 are the bytes), no merges.

Benchmark clients such as AIPerf size synthetic prompts and count output
tokens with a Hugging Face tokenizer; this one runs offline and counts what
`phasebench serve --model small` counts (it adds no beginning-of-sequence
token; the server adds one, so the server's prompt count is one more).

Usage: byte_tokenizer.py OUT_DIR
"""

import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast


def bytes_to_unicode():
    """GPT-2's printable stand-in for every byte (what ByteLevel maps bytes to)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


def main():
    out = sys.argv[1]
    vocab = {char: byte for byte, char in bytes_to_unicode().items()}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer)
    fast.save_pretrained(out)
    sample = "héllo, world"
    ids = fast(sample, add_special_tokens=False)["input_ids"]
    assert ids == list(sample.encode()), ids
    assert fast.decode(ids) == sample
    print(f"wrote {out}: {len(vocab)} byte tokens")


if __name__ == "__main__":
    main()

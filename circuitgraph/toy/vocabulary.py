"""Word-level tokenizer for the toy model, covering every word a task can emit.

Built offline with ``tokenizers``: a WordLevel model over a fixed, ordered vocabulary,
split on whitespace and punctuation (``"March,"`` -> ``["March", ","]``), decoded by
joining tokens with single spaces.

>>> tok = build_toy_tokenizer()
>>> tok.convert_ids_to_tokens(tok.encode("Here is a list: March,", add_special_tokens=False))
['Here', 'is', 'a', 'list', ':', 'March', ',']
>>> tok.decode(tok.encode("January , February ,", add_special_tokens=False))
'January , February ,'
"""

from __future__ import annotations

import re
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from circuitgraph.tasks.sequences import TASKS, Context, context_pool
from circuitgraph.tasks.templates import TEMPLATES

SPECIAL_TOKENS = ("<pad>", "<unk>", "<bos>")
TOY_TOKENIZER_DIR = Path(__file__).resolve().parent.parent / "data" / "toy-tokenizer"

_WORD_RE = re.compile(r"\w+|[^\w\s]")


def toy_words() -> list[str]:
    """Every word any task can emit in the toy format, in a fixed order, no duplicates."""
    words: list[str] = []
    for template in TEMPLATES.values():
        for fmt in (template.lead, template.item, template.last):
            words += _WORD_RE.findall(re.sub(r"\{[wma]\}", " ", fmt))
    for spec in TASKS.values():
        words += spec.values
    for context in Context:
        words += context_pool(context)
    return list(dict.fromkeys(words))


def _backend() -> Tokenizer:
    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS, *toy_words()])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation(behavior="isolated")]
    )
    backend.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    return backend


def _wrap(backend: Tokenizer) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<bos>",
        clean_up_tokenization_spaces=False,
    )


def build_toy_tokenizer() -> PreTrainedTokenizerFast:
    """The toy word-level tokenizer, built from ``toy_words()`` (deterministic ids)."""
    return _wrap(_backend())


def save_toy_tokenizer(path: str | Path = TOY_TOKENIZER_DIR) -> Path:
    """Write the toy tokenizer as a Hugging Face tokenizer folder; returns the folder.

    A folder rather than a bare ``tokenizers`` file: TransformerLens re-opens a model's
    tokenizer from its path.
    """
    path = Path(path)
    build_toy_tokenizer().save_pretrained(path)
    return path


def load_toy_tokenizer(path: str | Path = TOY_TOKENIZER_DIR):
    """Load a tokenizer folder written by ``save_toy_tokenizer`` (the shipped one by default)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)

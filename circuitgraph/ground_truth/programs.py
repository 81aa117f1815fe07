"""The RASP programs of the ground-truth suite (used only by ``generate.py``; needs tracr).

Each :class:`Program` names a RASP program, the vocabulary, ``max_seq_len``, BOS and
causality it is compiled with, and how its clean and corrupted inputs are made. tracr is
imported inside the builders, so this module imports (and its docstrings test) without it:

>>> names = [p.name for p in PROGRAMS]
>>> names[:2], len(names) >= 12, len(set(names)) == len(names)
(['reverse', 'proportion'], True, True)

Sources:

- ``reverse`` and ``proportion``: ACDC's tracr tasks, built exactly as
  ``acdc/tracr_task/utils.py`` (ArthurConmy/Automatic-Circuit-Discovery) builds them: the same
  RASP, vocabulary, ``max_seq_len=5``, ``compiler_bos="BOS"``, non-causal; their data as ACDC
  makes it (see :func:`acdc_reverse_data`, :func:`acdc_proportion_data`).
- tracr's own library (``tracr.compiler.lib``): hist, sort_unique, sort, sort_freq,
  pair_balance, shuffle_dyck, shuffle_dyck2, count_less_freq, count, detect_pattern.
- InterpBench-style small programs (one or two Map / Select-Aggregate steps, some compiled
  causal): frac_prevs_causal, prev_token, two_shifts_equal, frac_gt_half, map_chain.
"""

# pyright: reportMissingImports=false
# (tracr is only installed where the data are generated: pip install .[tracr])
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

BOS = "BOS"


@dataclass(frozen=True)
class Program:
    """One RASP program and how to compile it and make its task data.

    ``build()`` returns the RASP SOp (imports tracr). ``length`` is the number of tokens after
    BOS in every input (``None``: ``max_seq_len``). ``inputs`` lists the input sequences
    (without BOS) to sample from (``None``: every sequence over ``vocab`` of ``length``);
    ``data`` (if set) replaces the whole recipe and returns clean and corrupted token-id rows
    given the input encoder's map (used for ACDC's own data).
    """

    name: str
    build: Callable[[], Any]
    vocab: frozenset
    max_seq_len: int
    source: str
    description: str
    causal: bool = False
    length: int | None = None
    inputs: Callable[[], list[tuple]] | None = None
    data: Callable[[dict, Any], tuple[list[list[int]], list[list[int]]]] | None = None
    n_max: int = 64  # at most this many clean inputs (a seeded sample when there are more)
    notes: list[str] = field(default_factory=list)


# --- ACDC's two tasks -------------------------------------------------------------------


def _acdc_reverse():
    from tracr.rasp import rasp

    # As in ACDC's get_tracr_model_input_and_tl_model (its own make_length, unnamed SOps).
    all_true_selector = rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE)
    length = rasp.SelectorWidth(all_true_selector)
    opp_index = length - rasp.indices - 1
    flip = rasp.Select(rasp.indices, opp_index, rasp.Comparison.EQ)
    return rasp.Aggregate(flip, rasp.tokens)


def _acdc_proportion():
    from tracr.compiler.lib import make_frac_prevs
    from tracr.rasp import rasp

    return make_frac_prevs(rasp.tokens == "x")


def derangement(n: int, rng: Any) -> list[int]:
    """A seeded permutation of ``range(n)`` with no fixed point (ACDC's ``get_perm``)."""
    while True:
        perm = [int(i) for i in rng.permutation(n)]
        if all(p != i for i, p in enumerate(perm)):
            return perm


def acdc_reverse_data(encoding: dict, rng: Any) -> tuple[list[list[int]], list[list[int]]]:
    """ACDC's reverse data: ``[3, p0, p1, p2]`` for the 6 permutations p of ``[0, 1, 2]`` (ids
    0, 1, 2 are the tokens 1, 2, 3 and 3 is BOS), patched with the rows in a permutation with
    no fixed point (ACDC draws it with an unseeded ``torch.randperm``; here a seeded one)."""
    assert [encoding[t] for t in (1, 2, 3, BOS)] == [0, 1, 2, 3], encoding
    clean = [[3, *perm] for perm in itertools.permutations([0, 1, 2])]
    patch = derangement(len(clean), rng)
    return clean, [clean[i] for i in patch]


ACDC_PROPORTION_EXAMPLES = 50  # ACDC's num_examples for tracr-proportion


def acdc_proportion_data(encoding: dict, rng: Any) -> tuple[list[list[int]], list[list[int]]]:
    """ACDC's proportion validation data: ``num_examples=50`` rows drawn without replacement from
    the 256 strings of length 4 over ``wxyz``, each letter c as token id ``ord(c) - ord("w")``
    (no BOS column), patched with a permutation of those rows (ACDC: ``torch.randperm`` with
    the run's seed; here numpy, seeded). Note ACDC's ids are not the letters' own ids in the
    compiled model: 0, 1, 2, 3 are BOS, compiler_pad, w, x there (x, the counted token, is 3),
    so ACDC feeds sequences over {BOS, pad, w, x} with no BOS at position 0. Kept as ACDC has
    it; ``proportion`` measures the same model on the same kind of inputs."""
    strings = list(itertools.product("wxyz", repeat=4))
    picked = rng.permutation(len(strings))[:ACDC_PROPORTION_EXAMPLES]
    clean = [[ord(c) - ord("w") for c in strings[i]] for i in picked]
    patch = rng.permutation(ACDC_PROPORTION_EXAMPLES)
    return clean, [clean[int(i)] for i in patch]


# --- tracr's library --------------------------------------------------------------------


def _lib(name: str, *args: Any, **kwargs: Any) -> Callable[[], Any]:
    def build():
        from tracr.compiler import lib
        from tracr.rasp import rasp

        values = [rasp.tokens if a == "tokens" else a for a in args]
        return getattr(lib, name)(*values, **kwargs)

    build.__name__ = f"lib.{name}"
    return build


def _count_a():
    from tracr.compiler import lib
    from tracr.rasp import rasp

    return lib.make_count(rasp.tokens, "a")


def _detect_ab():
    from tracr.compiler import lib
    from tracr.rasp import rasp

    return lib.detect_pattern(rasp.tokens, "ab")


def _distinct(values: Iterable, length: int) -> Callable[[], list[tuple]]:
    return lambda: list(itertools.permutations(sorted(values), length))


# --- InterpBench-style small programs ---------------------------------------------------


def _frac_prevs_a():
    from tracr.compiler import lib
    from tracr.rasp import rasp

    return lib.make_frac_prevs(rasp.tokens == "a").named("frac_prevs_a")


def _prev_token():
    from tracr.compiler import lib
    from tracr.rasp import rasp

    return lib.shift_by(1, rasp.tokens).named("prev_token")


def _two_shifts_equal():
    from tracr.compiler import lib
    from tracr.rasp import rasp

    # Two heads in one layer (shift by 1 and by 2), then an MLP comparing their outputs.
    prev1 = lib.shift_by(1, rasp.tokens).named("prev1")
    prev2 = lib.shift_by(2, rasp.tokens).named("prev2")
    return rasp.SequenceMap(lambda x, y: x == y, prev1, prev2).named("prev1_eq_prev2")


def _frac_gt_half():
    from tracr.compiler import lib
    from tracr.rasp import rasp

    # Numerical MLP -> numerical aggregate -> numerical-to-categorical MLP.
    frac = lib.make_frac_prevs(rasp.tokens == "a").named("frac_a")
    return rasp.categorical(rasp.Map(lambda x: x > 0.5, frac)).named("frac_gt_half")


def _map_chain():
    from tracr.rasp import rasp

    # Categorical MLP -> categorical aggregate (select on a mapped key) -> categorical MLP.
    shifted = rasp.Map(lambda x: (x + 1) % 3, rasp.tokens).named("shifted")
    first = rasp.Select(rasp.indices, rasp.indices, lambda k, q: k == 0).named("select_first")
    first_shifted = rasp.Aggregate(first, shifted).named("first_shifted")
    return rasp.SequenceMap(lambda a, b: (a + b) % 3, first_shifted, rasp.tokens).named("map_chain")


ABC = frozenset({"a", "b", "c"})

PROGRAMS: list[Program] = [
    Program(
        "reverse", _acdc_reverse, frozenset({1, 2, 3}), 5, "acdc",
        "ACDC's tracr-reverse: reverse the tokens (length by SelectorWidth, opp_index MLPs, "
        "an aggregate that flips)",
        data=acdc_reverse_data,
        notes=["ACDC's data: the 6 permutations of tokens 1 2 3 after BOS (4 positions)"],
    ),
    Program(
        "proportion", _acdc_proportion, frozenset({"w", "x", "y", "z"}), 5, "acdc",
        "ACDC's tracr-proportion: make_frac_prevs(tokens == 'x'), the running fraction of x",
        data=acdc_proportion_data,
        notes=[
            "ACDC's data: 4 positions with no BOS column, token ids ord(c) - ord('w'), which "
            "in the compiled model are BOS, compiler_pad, w, x (not w, x, y, z); kept as ACDC "
            "has it"
        ],
    ),
    Program("hist", _lib("make_hist"), ABC, 4, "tracr.lib", "make_hist(): each token's count"),
    Program(
        "sort_unique", _lib("make_sort_unique", "tokens", "tokens"), frozenset({1, 2, 3, 4, 5}),
        4, "tracr.lib", "make_sort_unique(tokens, tokens): sort distinct tokens",
        inputs=_distinct({1, 2, 3, 4, 5}, 4),
    ),
    Program(
        "sort", _lib("make_sort", "tokens", "tokens", max_seq_len=4, min_key=1),
        frozenset({1, 2, 3}), 4, "tracr.lib",
        "make_sort(tokens, tokens, max_seq_len=4, min_key=1): sort with repeated keys",
    ),
    Program(
        "sort_freq", _lib("make_sort_freq", max_seq_len=4), ABC, 4, "tracr.lib",
        "make_sort_freq(4): tokens sorted by descending frequency",
    ),
    Program(
        "pair_balance", _lib("make_pair_balance", "tokens", "(", ")"), frozenset({"(", ")"}),
        5, "tracr.lib",
        "make_pair_balance(tokens, '(', ')'): fraction of opens minus closes so far (numeric)",
    ),
    Program(
        "shuffle_dyck", _lib("make_shuffle_dyck", ["()"]), frozenset({"(", ")", "x"}), 4,
        "tracr.lib", "make_shuffle_dyck(['()']): 1 iff the parentheses are balanced",
    ),
    Program(
        "shuffle_dyck2", _lib("make_shuffle_dyck2"), frozenset({"(", ")", "{", "}"}), 4,
        "tracr.lib", "make_shuffle_dyck2(): both bracket kinds balanced",
    ),
    Program(
        "count_less_freq", _lib("make_count_less_freq", 2), ABC, 4, "tracr.lib",
        "make_count_less_freq(2): how many tokens occur at most twice",
    ),
    Program("count", _count_a, ABC, 4, "tracr.lib", "make_count(tokens, 'a'): count of a"),
    Program(
        "detect_pattern", _detect_ab, ABC, 4, "tracr.lib",
        "detect_pattern(tokens, 'ab'): True where 'a b' ends",
    ),
    Program(
        "frac_prevs_causal", _frac_prevs_a, ABC, 4, "interpbench-style",
        "make_frac_prevs(tokens == 'a') compiled causal (numeric)", causal=True,
    ),
    Program(
        "prev_token", _prev_token, ABC, 4, "interpbench-style",
        "shift_by(1, tokens) compiled causal: copy the previous token", causal=True,
    ),
    Program(
        "two_shifts_equal", _two_shifts_equal, ABC, 4, "interpbench-style",
        "two heads in one layer (shift by 1 and 2) and an MLP testing them equal", causal=True,
    ),
    Program(
        "frac_gt_half", _frac_gt_half, ABC, 4, "interpbench-style",
        "numerical MLP -> numerical aggregate -> categorical MLP: more than half a's so far",
    ),
    Program(
        "map_chain", _map_chain, frozenset({0, 1, 2}), 4, "interpbench-style",
        "categorical MLP -> aggregate of the first position -> SequenceMap with tokens",
    ),
]  # fmt: skip

BY_NAME = {p.name: p for p in PROGRAMS}


# ACDC's hand-written ground truth (acdc/tracr_task/utils.py, get_tracr_reverse_edges and
# get_tracr_proportion_edges, "generated from ACDC run with threshold epsilon, metric l2 and zero
# ablation (commit e612e50)"), verbatim as (receiver hook, sender hook, head or None): ACDC's
# tuples are (receiver, receiver index, sender, sender index), the index (None, None, h) naming
# head h. ``generate`` maps them to circuitgraph names.
ACDC_EDGES: dict[str, list[tuple[str, str, int | None, int | None]]] = {
    "proportion": [
        ("blocks.1.hook_resid_post", "blocks.1.attn.hook_result", None, 0),
        ("blocks.1.attn.hook_result", "blocks.1.attn.hook_q", 0, 0),
        ("blocks.1.attn.hook_result", "blocks.1.attn.hook_k", 0, 0),
        ("blocks.1.attn.hook_result", "blocks.1.attn.hook_v", 0, 0),
        ("blocks.1.attn.hook_q", "blocks.1.hook_q_input", 0, 0),
        ("blocks.1.attn.hook_k", "blocks.1.hook_k_input", 0, 0),
        ("blocks.1.attn.hook_v", "blocks.1.hook_v_input", 0, 0),
        ("blocks.1.hook_q_input", "hook_embed", 0, None),
        ("blocks.1.hook_q_input", "hook_pos_embed", 0, None),
        ("blocks.1.hook_k_input", "hook_embed", 0, None),
        ("blocks.1.hook_k_input", "hook_pos_embed", 0, None),
        ("blocks.1.hook_v_input", "blocks.0.hook_mlp_out", 0, None),
        ("blocks.0.hook_mlp_out", "blocks.0.hook_mlp_in", None, None),
        ("blocks.0.hook_mlp_in", "hook_embed", None, None),
    ],
    "reverse": [
        ("blocks.3.hook_resid_post", "blocks.3.attn.hook_result", None, 0),
        ("blocks.3.attn.hook_result", "blocks.3.attn.hook_q", 0, 0),
        ("blocks.3.attn.hook_result", "blocks.3.attn.hook_k", 0, 0),
        ("blocks.3.attn.hook_result", "blocks.3.attn.hook_v", 0, 0),
        ("blocks.3.attn.hook_q", "blocks.3.hook_q_input", 0, 0),
        ("blocks.3.attn.hook_k", "blocks.3.hook_k_input", 0, 0),
        ("blocks.3.attn.hook_v", "blocks.3.hook_v_input", 0, 0),
        ("blocks.3.hook_q_input", "blocks.2.hook_mlp_out", 0, None),
        ("blocks.3.hook_k_input", "hook_pos_embed", 0, None),
        ("blocks.3.hook_v_input", "hook_embed", 0, None),
        ("blocks.2.hook_mlp_out", "blocks.2.hook_mlp_in", None, None),
        ("blocks.2.hook_mlp_in", "blocks.1.hook_mlp_out", None, None),
        ("blocks.1.hook_mlp_out", "blocks.1.hook_mlp_in", None, None),
        ("blocks.1.hook_mlp_in", "blocks.0.hook_mlp_out", None, None),
        ("blocks.1.hook_mlp_in", "hook_embed", None, None),
        ("blocks.1.hook_mlp_in", "hook_pos_embed", None, None),
        ("blocks.0.hook_mlp_out", "blocks.0.hook_mlp_in", None, None),
        ("blocks.0.hook_mlp_in", "blocks.0.attn.hook_result", None, 0),
        ("blocks.0.hook_mlp_in", "hook_embed", None, None),
        ("blocks.0.attn.hook_result", "blocks.0.attn.hook_q", 0, 0),
        ("blocks.0.attn.hook_result", "blocks.0.attn.hook_k", 0, 0),
        ("blocks.0.attn.hook_result", "blocks.0.attn.hook_v", 0, 0),
        ("blocks.0.attn.hook_v", "blocks.0.hook_v_input", 0, 0),
        ("blocks.0.hook_v_input", "hook_embed", 0, None),
    ],
}


def acdc_hook_node(hook: str, head: int | None) -> str:
    """circuitgraph's node for an ACDC hook at head ``head``: the embeddings are ``embed``, the
    final residual ``logits``, ``hook_mlp_in`` / ``hook_mlp_out`` of layer L ``mLL``, a head's
    ``hook_result`` ``aL.H`` and its ``hook_q`` / ``hook_q_input`` (k, v alike) ``aL.H.q``.

    >>> acdc_hook_node("blocks.3.hook_q_input", 0), acdc_hook_node("blocks.0.hook_mlp_out", None)
    ('a3.0.q', 'm0')
    """
    if hook in ("hook_embed", "hook_pos_embed"):
        return "embed"
    parts = hook.split(".")
    layer, last = int(parts[1]), parts[-1]
    if last == "hook_resid_post":
        return "logits"
    if last in ("hook_mlp_in", "hook_mlp_out"):
        return f"m{layer}"
    if last == "hook_result":
        return f"a{layer}.{head}"
    letter = last.removeprefix("hook_")[0]
    assert last in (f"hook_{letter}", f"hook_{letter}_input") and letter in "qkv", hook
    return f"a{layer}.{head}.{letter}"


def acdc_edges(name: str) -> list[tuple[str, str]]:
    """ACDC's hand-written truth of ``name`` as circuitgraph (sender, receiver) edges; the ACDC
    edges inside one circuitgraph node (``hook_mlp_in -> hook_mlp_out``, ``hook_q_input ->
    hook_q``) disappear, a head's ``hook_q -> hook_result`` is its internal edge ``aL.H.q ->
    aL.H``.

    >>> ("m2", "a3.0.q") in acdc_edges("reverse"), len(acdc_edges("proportion"))
    (True, 8)
    """
    edges = set()
    for receiver, sender, receiver_head, sender_head in ACDC_EDGES[name]:
        u, v = acdc_hook_node(sender, sender_head), acdc_hook_node(receiver, receiver_head)
        if u != v:
            edges.add((u, v))
    return sorted(edges)

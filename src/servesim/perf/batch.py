"""The aggregate description of one engine iteration that a performance model prices."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Batch:
    """One iteration: `num_decodes` decoding requests plus prefill chunks.

    decode_ctx_sum: tokens attended over all decodes, each counting its new token
        (a request with 2047 cached tokens contributes 2048).
    prefill_lens[i]: new tokens of chunk i; prefill_ctx[i]: tokens cached before it.
    decode_q: query tokens per decode (k+1 when speculative decoding verifies k drafted tokens).
    prefill_layers: the fraction of the layers the prefill chunks pass through this iteration (layered
        prefill runs a prompt through one group of layers per iteration; decodes always run them all).
    """

    num_decodes: int = 0
    decode_ctx_sum: int = 0
    prefill_lens: tuple[int, ...] = ()
    prefill_ctx: tuple[int, ...] = ()
    decode_q: int = 1
    prefill_layers: float = 1.0

    def __post_init__(self):
        if len(self.prefill_lens) != len(self.prefill_ctx):
            raise ValueError("prefill_lens and prefill_ctx must have the same length")

    @property
    def num_prefill_tokens(self) -> int:
        return sum(self.prefill_lens)

    @property
    def num_tokens(self) -> int:
        return self.num_decodes * self.decode_q + sum(self.prefill_lens)

    @property
    def logit_rows(self) -> int:
        """Positions the LM head and sampler see: every query token of a decode, the last of a chunk."""
        return self.num_decodes * self.decode_q + len(self.prefill_lens)

    @property
    def num_seqs(self) -> int:
        return self.num_decodes + len(self.prefill_lens)

    @property
    def prefill_pairs(self) -> int:
        """Causal query-key pairs of the prefill chunks: L*C + L*(L+1)/2 each."""
        return sum(n * c + n * (n + 1) // 2 for n, c in zip(self.prefill_lens, self.prefill_ctx, strict=True))

    @property
    def prefill_kv_tokens(self) -> int:
        """Tokens of KV the prefill chunks read (cached context plus the chunk)."""
        return sum(self.prefill_lens) + sum(self.prefill_ctx)

    @classmethod
    def decode(cls, count: int, ctx: int) -> Batch:
        """`count` decodes, each attending to `ctx` tokens."""
        return cls(num_decodes=count, decode_ctx_sum=count * ctx)

    @classmethod
    def prefill(cls, length: int, ctx: int = 0) -> Batch:
        return cls(prefill_lens=(length,), prefill_ctx=(ctx,))

    def __add__(self, other: Batch) -> Batch:
        if (self.decode_q, self.prefill_layers) != (other.decode_q, other.prefill_layers):
            raise ValueError("batches with different decode_q or prefill_layers do not add")
        return Batch(
            self.num_decodes + other.num_decodes,
            self.decode_ctx_sum + other.decode_ctx_sum,
            self.prefill_lens + other.prefill_lens,
            self.prefill_ctx + other.prefill_ctx,
            self.decode_q,
            self.prefill_layers,
        )

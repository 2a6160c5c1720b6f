"""One engine iteration priced on its own (`servesim step`): time, energy and per-operator breakdown."""

from __future__ import annotations

from servesim.errors import ServesimError
from servesim.models.spec import MAX_TOKENS
from servesim.perf.batch import Batch

MAX_COUNT = 1_000_000  # decodes in one iteration


def parse_prefill(text: str) -> Batch:
    """`LEN[:CTX]`: a chunk of LEN new tokens after CTX cached ones."""
    length, _, ctx = text.partition(":")
    try:
        n, c = int(length), int(ctx or 0)
    except ValueError:
        raise ServesimError(f"--prefill '{text}' must be LEN or LEN:CTX (integers)") from None
    if n < 1 or c < 0 or n + c > MAX_TOKENS:
        raise ServesimError(f"--prefill '{text}': LEN must be >= 1, CTX >= 0, and LEN + CTX at most {MAX_TOKENS:,}")
    return Batch.prefill(n, c)


def parse_decode(text: str) -> Batch:
    """`COUNTxCTX`: COUNT decoding requests with CTX tokens of context."""
    count, sep, ctx = text.lower().partition("x")
    try:
        n, c = int(count), int(ctx)
    except ValueError:
        raise ServesimError(f"--decode '{text}' must be COUNTxCTX, e.g. 64x2048") from None
    if not sep or n < 1 or c < 1 or n > MAX_COUNT or c > MAX_TOKENS:
        raise ServesimError(f"--decode '{text}': COUNT and CTX must be >= 1, COUNT at most {MAX_COUNT:,} and CTX "
                            f"at most {MAX_TOKENS:,}")  # fmt: skip
    return Batch.decode(n, c)


def parse_batch(prefill: list[str], decode: list[str]) -> Batch:
    if not prefill and not decode:
        raise ServesimError("give at least one --prefill LEN[:CTX] or --decode COUNTxCTX")
    batch = Batch()
    for part in [parse_prefill(t) for t in prefill] + [parse_decode(t) for t in decode]:
        batch = batch + part
    return batch


def price_step(model: str, gpu: str, batch: Batch, tp: int = 1, dtype: str = "bf16", perf_model: str = "auto",
               gpu_file=None, kv_cache_dtype: str = "auto", ep: int = 1, dp: int = 1) -> dict:  # fmt: skip
    """Seconds, joules and the per-operator breakdown of one iteration of `batch` on one attention rank (with
    `dp` data-parallel attention ranks, each runs a batch like it at once; joules count every GPU)."""
    from servesim.config import EngineConfig
    from servesim.hardware import get_gpu
    from servesim.kv_geometry import kv_dtype
    from servesim.layout import Layout
    from servesim.models import get_model
    from servesim.perf.energy import PowerModel
    from servesim.perf.profiled import describe, make_perf_model

    engine = EngineConfig(tp=tp, ep=ep, dp=dp, dtype=dtype, kv_cache_dtype=kv_cache_dtype)  # (validates the values)
    m, g = get_model(model), get_gpu(gpu, gpu_file)
    layout = Layout.of(engine)
    notes = layout.check(m)
    kv = kv_dtype(engine.dtype, engine.kv_cache_dtype)
    perf = make_perf_model(m, g, layout, engine.dtype, kv, perf_model)
    ops = perf.breakdown(batch)
    total = perf.iteration_time(batch)
    power = PowerModel.for_gpu(g, getattr(perf, "profile", None))
    watts = power.watts(ops)
    return {
        "model": m.name,
        "gpu": g.name,
        "tp": tp,
        "ep": ep,
        "dp": dp,
        "layout": layout.label(),
        "gpus": layout.gpus,
        "dtype": dtype,
        "kv_cache_dtype": kv,
        "perf_model": describe(perf),
        "batch": {
            "num_tokens": batch.num_tokens,
            "num_seqs": batch.num_seqs,
            "num_decodes": batch.num_decodes,
            "decode_ctx_sum": batch.decode_ctx_sum,
            "prefill_lens": list(batch.prefill_lens),
            "prefill_ctx": list(batch.prefill_ctx),
        },
        "seconds": total,
        "joules": watts * total * layout.gpus,
        "watts_per_gpu": watts,
        "power_source": power.source,
        "breakdown": {op.name: op.seconds for op in ops},
        # the layout's assumptions, and what it priced past its measurements
        "notes": list(notes) + list(getattr(perf, "outside", ())),
        "ops": [{"name": o.name, "seconds": o.seconds, "flops": o.flops, "bytes": o.bytes, "bound": o.bound}
                for o in ops],  # fmt: skip
    }

"""The validation grid follows the GPU's free memory; running out of memory ends in one line, keeping data."""

import pandas as pd
import pytest

from servesim.errors import ServesimError
from servesim.models import get_model
from servesim.profiler import validate
from servesim.profiler.validate import MeasurementStopped, kv_bytes, skipped, validate_model, validation_grid

GIB = 2**30


def test_grid_is_sized_by_memory():
    llama = get_model("llama-3.1-8b")  # 128 KiB of KV per token
    full, small = validation_grid(llama), validation_grid(llama, 20 * GIB)
    assert len(full) == 62 and len(small) == 54
    assert ("decode", 0, 0, 4, 32768) in full and ("mixed", 256, 0, 64, 4096) in full
    assert all(kv_bytes(llama, b) <= 20 * GIB for b in small)
    notes = skipped(llama, 20 * GIB)
    assert len(notes) == 8 and any("decodes 128x2048: its KV cache needs 32.0 GiB, 20.0 GiB available" in n
                                   for n in notes)  # fmt: skip
    assert {b[0] for b in small} == {"prefill", "decode", "mixed"}


def test_long_grid_holds_prompts_to_128k_tokens_where_the_cache_fits():
    llama = get_model("llama-3.1-8b")
    assert {L + C for _, L, C, _, _ in validation_grid(llama, grid="long")} == {16384, 32768, 65536, 81920, 131072}
    fits = validation_grid(llama, 9 * GIB, grid="long")  # 128 KiB a token: 64k tokens 8 GiB, 128k 16 GiB
    assert ("prefill", 131072, 0, 0, 0) not in fits and ("prefill", 65536, 0, 0, 0) in fits
    assert len(skipped(llama, 9 * GIB, grid="long")) == 2  # 128k, and 16k after 64k (80k tokens, 10 GiB)
    with pytest.raises(ServesimError, match="unknown --grid wide"):
        validate_model("llama-3.1-8b", "h100-sxm", None, None, True, None, grid="wide")
    with pytest.raises(ServesimError, match="--grid long measures on one GPU"):
        validate_model("llama-3.1-8b", "h100-sxm", None, None, True, None, tp=2, grid="long")


def test_out_of_memory_is_one_line_and_keeps_what_was_measured(tmp_path, monkeypatch):
    rows = [dict(model="llama-3.1-8b", gpu="h100-sxm", kind="prefill", chunk=64, chunk_ctx=0, decodes=0,
                 decode_ctx=0, measured_s=0.008)]  # fmt: skip

    def stopped(spec, gpu, log, **dtypes):
        raise MeasurementStopped("out of GPU memory at the decode batch chunk 0:0 decodes 64x8192 (its KV cache "
                                 "needs 64.0 GiB; 62.3 GiB free)", rows)  # fmt: skip

    monkeypatch.setattr(validate, "measure", stopped)
    out = tmp_path / "v.csv"
    with pytest.raises(ServesimError) as err:
        validate_model("llama-3.1-8b", "h100-sxm", out, None, True, None)
    msg = str(err.value)
    assert "\n" not in msg and "decodes 64x8192" in msg and f"the 1 batches measured before it are in {out}" in msg
    assert pd.read_csv(out).measured_s.tolist() == [0.008]


def test_a_measurement_is_never_written_over(tmp_path, monkeypatch):
    from servesim.errors import ServesimError
    from servesim.profiler.validate import validate_model

    monkeypatch.chdir(tmp_path)
    (tmp_path / "validation_h100-sxm_llama-3.1-8b.csv").write_text("earlier\n")
    with pytest.raises(ServesimError, match="exists \\(an earlier measurement\\); pass --out"):
        validate_model("llama-3.1-8b", "h100", None, None, True, None)
    assert (tmp_path / "validation_h100-sxm_llama-3.1-8b.csv").read_text() == "earlier\n"

import pytest

from servesim.errors import ServesimError
from servesim.hardware import catalog, get_gpu, load_gpu_file

REQUIRED = ["a100-80gb-sxm", "h100-sxm", "h200", "b200", "l40s", "mi300x"]


def test_catalog_has_required_gpus_with_sources():
    gpus = catalog()
    for name in REQUIRED:
        assert name in gpus
        assert gpus[name].source, f"{name} lacks a datasheet citation"


def test_datasheet_figures():
    h100 = get_gpu("h100")
    assert h100.bf16_tflops == pytest.approx(989.4)
    assert h100.fp8_tflops == pytest.approx(2 * 989.4, rel=1e-3)
    assert h100.mem_bw_gbs == 3350
    assert get_gpu("h200").mem_bw_gbs == 4800
    assert get_gpu("H200").memory_gib > h100.memory_gib
    assert get_gpu("a100").fp8_tflops == 0


def test_no_fp8_on_ampere():
    with pytest.raises(ServesimError, match="fp8"):
        get_gpu("a100").peak_flops("fp8")


def test_unknown_gpu_lists_known():
    with pytest.raises(ServesimError, match="unknown GPU 'h900'.*h100-sxm"):
        get_gpu("h900")


def test_user_file_adds_gpu(fixtures, monkeypatch):
    gpu = get_gpu("toy", fixtures / "my_gpus.toml")
    assert gpu.name == "toy-gpu" and gpu.bf16_tflops == 100
    monkeypatch.setenv("SERVESIM_GPU_FILE", str(fixtures / "my_gpus.toml"))
    assert "toy-gpu" in catalog()


def test_bad_user_file(tmp_path):
    bad = tmp_path / "gpus.toml"
    bad.write_text("[x]\nbf16_tflops = -1\nmemory_gib = 1\nmem_bw_gbs = 1\nlink_gbs = 1\ntdp_w = 1\n")
    with pytest.raises(ServesimError, match=r"GPU \[x\] field bf16_tflops"):
        load_gpu_file(bad)
    bad.write_text("not toml [")
    with pytest.raises(ServesimError, match="not valid TOML"):
        load_gpu_file(bad)


def test_measurements_refuse_a_label_of_another_gpu():
    """profile and validate check the device against the GPU they are told it is (memory as torch reports it)."""
    from servesim.hardware import check_device

    h100, h200 = get_gpu("h100"), get_gpu("h200")
    check_device(h100, "NVIDIA H100 80GB HBM3", 85017493504 / 2**30)  # the shipped profiles' devices
    check_device(h200, "NVIDIA H200", 150109880320 / 2**30)
    with pytest.raises(ServesimError, match=r"H100 80GB HBM3 with 79.2 GiB, not h200 .*pass --gpu h100-sxm"):
        check_device(h200, "NVIDIA H100 80GB HBM3", 85017493504 / 2**30)
    with pytest.raises(ServesimError, match="add this GPU with --gpu-file"):
        check_device(h100, "NVIDIA RTX 4090", 23.6)
    with pytest.raises(ServesimError, match="not a100-80gb-sxm .*pass --gpu h100-sxm"):  # same memory, other GPU
        check_device(get_gpu("a100"), "NVIDIA H100 80GB HBM3", 85017493504 / 2**30)

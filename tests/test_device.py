"""Device and precision: what ``auto`` means, the one-line error for a device that is not there, autocast."""
from __future__ import annotations

import pytest
import torch

from vot_lorat.device import PRECISIONS, DeviceError, autocast, resolve_device, resolve_precision


def test_auto_and_cpu():
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("spec", ["cuda", "cuda:1", "gpu0"])
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_names_the_device_what_exists_and_the_fix(spec):
    with pytest.raises(DeviceError) as err:
        resolve_device(spec)
    message = str(err.value)
    assert f"'{spec}'" in message and "\n" not in message
    assert ("CPU-only build" in message or "no CUDA GPU" in message) and "cpu" in message


def test_a_gpu_index_past_the_last_is_refused():
    count = torch.cuda.device_count()
    with pytest.raises(ValueError, match=rf"device 'cuda:{count}' asked, but .*use "):
        resolve_device(f"cuda:{count}")


def test_unknown_device_names_lists_the_accepted_ones():
    with pytest.raises(DeviceError, match="unknown device 'gpu0': use auto, cpu, cuda or cuda:N"):
        resolve_device("gpu0")


def test_auto_precision_is_fp16_on_cuda_and_fp32_elsewhere():
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert resolve_precision("auto", torch.device("cuda")) == "fp16"
    assert resolve_precision("auto", torch.device("cuda"), cuda_default="bf16") == "bf16"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"


def test_autocast_runs_matmuls_at_the_precision():
    a = torch.ones(4, 4)
    with autocast("fp32", torch.device("cpu")):
        assert (a @ a).dtype == torch.float32
    with autocast("bf16", torch.device("cpu")):
        assert (a @ a).dtype == torch.bfloat16
    assert PRECISIONS == ("fp32", "fp16", "bf16")
    with pytest.raises(ValueError, match="fp32, fp16, bf16"):
        autocast("int8", torch.device("cpu"))

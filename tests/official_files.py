"""Test helpers: weight files in the official layouts, and an independent LoRAT forward pass.

The reference forward below is written from the official network's formulas with plain tensor
operations on the raw file contents (Meta key names, fused qkv, explicit softmax attention), so it
shares no code with ``vot_lorat``.
"""
from __future__ import annotations

import math
from typing import Dict

import torch
import torch.nn.functional as F
from safetensors.torch import save_file


def meta_dinov2_state(dim: int, depth: int, swiglu: bool, hidden: int, grid: int = 37,
                      seed: int = 0) -> Dict[str, torch.Tensor]:
    """A DINOv2 checkpoint with Meta's key names and realistic (not 1e-5) LayerScale gammas."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, std=0.02):
        return torch.randn(*shape, generator=g) * std

    s = {
        "cls_token": rnd(1, 1, dim),
        "pos_embed": rnd(1, 1 + grid * grid, dim, std=0.5),
        "mask_token": rnd(1, dim),
        "patch_embed.proj.weight": rnd(dim, 3, 14, 14, std=0.05),
        "patch_embed.proj.bias": rnd(dim),
        "norm.weight": 1 + rnd(dim, std=0.1),
        "norm.bias": rnd(dim, std=0.1),
    }
    for i in range(depth):
        p = f"blocks.{i}."
        s[p + "norm1.weight"] = 1 + rnd(dim, std=0.1)
        s[p + "norm1.bias"] = rnd(dim, std=0.1)
        s[p + "attn.qkv.weight"] = rnd(3 * dim, dim, std=0.1)
        s[p + "attn.qkv.bias"] = rnd(3 * dim, std=0.1)
        s[p + "attn.proj.weight"] = rnd(dim, dim, std=0.1)
        s[p + "attn.proj.bias"] = rnd(dim, std=0.1)
        s[p + "ls1.gamma"] = 0.5 + rnd(dim, std=0.2)
        s[p + "norm2.weight"] = 1 + rnd(dim, std=0.1)
        s[p + "norm2.bias"] = rnd(dim, std=0.1)
        if swiglu:
            s[p + "mlp.w12.weight"] = rnd(hidden, dim, std=0.1)
            s[p + "mlp.w12.bias"] = rnd(hidden, std=0.1)
            s[p + "mlp.w3.weight"] = rnd(dim, hidden // 2, std=0.1)
            s[p + "mlp.w3.bias"] = rnd(dim, std=0.1)
        else:
            s[p + "mlp.fc1.weight"] = rnd(hidden, dim, std=0.1)
            s[p + "mlp.fc1.bias"] = rnd(hidden, std=0.1)
            s[p + "mlp.fc2.weight"] = rnd(dim, hidden, std=0.1)
            s[p + "mlp.fc2.bias"] = rnd(dim, std=0.1)
        s[p + "ls2.gamma"] = 0.5 + rnd(dim, std=0.2)
    return s


def lorat_2024_state(dim: int, depth: int, swiglu: bool, hidden: int, rank: int, alpha: int,
                     seed: int = 1) -> Dict[str, torch.Tensor]:
    """The tensors of a released 2024 ``model.bin``: adapters, token types, head, lora_alpha, use_rslora."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, std=0.05):
        return torch.randn(*shape, generator=g) * std

    fc1, fc2 = ("mlp.w12", "mlp.w3") if swiglu else ("mlp.fc1", "mlp.fc2")
    fc2_in = hidden // 2 if swiglu else hidden
    s = {}
    for i in range(depth):
        p = f"blocks.{i}."
        for name, (n_in, n_out) in {
            "attn.qkv.q": (dim, dim), "attn.qkv.k": (dim, dim), "attn.qkv.v": (dim, dim),
            "attn.proj": (dim, dim), fc1: (dim, hidden), fc2: (fc2_in, dim),
        }.items():
            s[f"{p}{name}.lora.A"] = rnd(rank, n_in)
            s[f"{p}{name}.lora.B"] = rnd(n_out, rank)
    s["token_type_embed"] = rnd(3, dim, std=0.5)
    for branch, out in (("cls_mlp", 1), ("reg_mlp", 4)):
        for j, n_out in enumerate((dim, dim, out)):
            s[f"head.{branch}.layers.{j}.weight"] = rnd(n_out, dim, std=0.2)
            s[f"head.{branch}.layers.{j}.bias"] = rnd(n_out, std=0.2)
    s["lora_alpha"] = torch.tensor(alpha, dtype=torch.int64)
    s["use_rslora"] = torch.tensor(False)
    return s


def write_model_bin(state: Dict[str, torch.Tensor], path: str) -> None:
    """The 2024 release writes safetensors bytes into a file named model.bin."""
    save_file({k: v.contiguous() for k, v in state.items()}, path, metadata={"format": "pt"})


def _layer_norm(x, w, b):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-6) * w + b


def _gelu(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def reference_forward(backbone: Dict[str, torch.Tensor], lorat: Dict[str, torch.Tensor], num_heads: int,
                      swiglu: bool, z: torch.Tensor, x: torch.Tensor, z_mask: torch.Tensor,
                      search_grid: int) -> Dict[str, torch.Tensor]:
    """LoRAT forward from the spec's formulas on Meta + 2024 key names (float64 for a clean reference)."""
    d = torch.float64
    W = {k: v.to(d) for k, v in backbone.items()}
    L = {k: v.to(d) for k, v in lorat.items() if k not in ("lora_alpha", "use_rslora")}
    alpha = float(lorat["lora_alpha"]) if "lora_alpha" in lorat else None
    rank = next(v for k, v in L.items() if k.endswith("lora.A")).shape[0]
    scale = 1.0 if alpha is None else alpha / rank

    def delta(name):
        return L[name + ".lora.B"] @ L[name + ".lora.A"] * scale

    dim = W["patch_embed.proj.weight"].shape[0]
    # position embedding: drop cls, 37x37 grid, bicubic to the search grid, template = top-left sub-grid
    pos = W["pos_embed"][:, 1:].float()
    grid = int(round(pos.shape[1] ** 0.5))
    pos = pos.reshape(1, grid, grid, dim).permute(0, 3, 1, 2)
    pos = F.interpolate(pos, size=(search_grid, search_grid), mode="bicubic", align_corners=False,
                        antialias=False).to(d)
    pos_grid = pos.permute(0, 2, 3, 1)  # 1, G, G, D
    pos_x = pos_grid.reshape(1, -1, dim)
    zh, zw = z_mask.shape[-2:]
    pos_z = pos_grid[:, :zh, :zw].reshape(1, -1, dim)

    def patchify(img):
        t = F.conv2d(img.to(d), W["patch_embed.proj.weight"], W["patch_embed.proj.bias"], stride=14)
        return t.flatten(2).transpose(1, 2)

    tte = L["token_type_embed"]
    zt = patchify(z) + pos_z + tte[z_mask.flatten(1).long()]
    xt = patchify(x) + pos_x + tte[2]
    t = torch.cat([zt, xt], 1)
    B, N, _ = t.shape
    hd = dim // num_heads
    depth = 1 + max(int(k.split(".")[1]) for k in W if k.startswith("blocks."))
    fc1, fc2 = ("mlp.w12", "mlp.w3") if swiglu else ("mlp.fc1", "mlp.fc2")
    for i in range(depth):
        p = f"blocks.{i}."
        qkv_w = W[p + "attn.qkv.weight"] + torch.cat([delta(p + f"attn.qkv.{c}") for c in "qkv"])
        h = _layer_norm(t, W[p + "norm1.weight"], W[p + "norm1.bias"])
        qkv = (h @ qkv_w.T + W[p + "attn.qkv.bias"]).reshape(B, N, 3, num_heads, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1)
        a = (att @ v).transpose(1, 2).reshape(B, N, dim)
        a = a @ (W[p + "attn.proj.weight"] + delta(p + "attn.proj")).T + W[p + "attn.proj.bias"]
        t = t + a * W[p + "ls1.gamma"]
        h = _layer_norm(t, W[p + "norm2.weight"], W[p + "norm2.bias"])
        h = h @ (W[p + fc1 + ".weight"] + delta(p + fc1)).T + W[p + fc1 + ".bias"]
        if swiglu:
            h1, h2 = h.chunk(2, dim=-1)
            h = h1 * torch.sigmoid(h1) * h2
        else:
            h = _gelu(h)
        h = h @ (W[p + fc2 + ".weight"] + delta(p + fc2)).T + W[p + fc2 + ".bias"]
        t = t + h * W[p + "ls2.gamma"]
    t = _layer_norm(t, W["norm.weight"], W["norm.bias"])
    s = t[:, zt.shape[1]:]

    def mlp(branch, v):
        for j in range(3):
            v = v @ L[f"head.{branch}.layers.{j}.weight"].T + L[f"head.{branch}.layers.{j}.bias"]
            if j < 2:
                v = _gelu(v)
        return v

    G = search_grid
    score = mlp("cls_mlp", s).reshape(B, G, G)
    ltrb = torch.sigmoid(mlp("reg_mlp", s)).reshape(B, G, G, 4)
    c = (torch.arange(G, dtype=d) + 0.5) / G
    cy, cx = torch.meshgrid(c, c, indexing="ij")
    boxes = torch.stack([cx - ltrb[..., 0], cy - ltrb[..., 1], cx + ltrb[..., 2], cy + ltrb[..., 3]], -1)
    return {"score_map": score, "boxes": boxes}

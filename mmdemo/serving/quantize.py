"""int8 on CPU (`MMDEMO_QUANTIZE=int8`): dynamic quantisation of an adapter's Linear layers and attention.

Weights are stored as int8 and activations quantised per batch. `torch.ao.quantization.quantize_dynamic` is
deprecated in favour of torchao, whose CPU int8 path needs `torch.compile` to beat float32; the dynamic path
is the one that speeds up eager CPU inference.

`nn.MultiheadAttention` keeps its q/k/v projection as one packed Parameter and its output projection as a
`NonDynamicallyQuantizableLinear`, so dynamic quantisation skips both: a quarter of a ViT-B-32's time. Each
one is first rewritten as `LinearAttention` (the same function, its projections plain `nn.Linear`).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

QUANTIZABLE_ATTRIBUTES = ("model",)  # the adapter attributes that hold its torch model


class LinearAttention(nn.Module):
    """`nn.MultiheadAttention` in inference, with its projections as `nn.Linear` layers: the same arguments,
    masks and results (attention weights included, where asked for)."""

    def __init__(self, attention: nn.MultiheadAttention) -> None:
        super().__init__()
        dim = attention.embed_dim
        self.heads, self.batch_first = attention.num_heads, attention.batch_first
        self.qkv = nn.Linear(dim, 3 * dim, bias=attention.in_proj_bias is not None)
        self.out = nn.Linear(dim, dim, bias=attention.out_proj.bias is not None)
        with torch.no_grad():
            self.qkv.weight.copy_(attention.in_proj_weight)
            self.out.weight.copy_(attention.out_proj.weight)
            if attention.in_proj_bias is not None:
                self.qkv.bias.copy_(attention.in_proj_bias)
            if attention.out_proj.bias is not None:
                self.out.bias.copy_(attention.out_proj.bias)

    @staticmethod
    def converts(attention: nn.MultiheadAttention) -> bool:
        """Whether `attention` has only the parts this module computes (one q/k/v size, no extra biases)."""
        return bool(
            attention._qkv_same_embed_dim
            and attention.in_proj_weight is not None
            and attention.bias_k is None
            and not attention.add_zero_attn
        )

    def _project(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> list[torch.Tensor]:
        """q, k and v, each (batch, heads, length, head dim): self-attention in one matrix product (int8 once
        quantised); attention between different tensors from the float weights, slice by slice."""
        if key is query and value is query:
            return list(self.qkv(query).chunk(3, dim=-1))
        weight, bias = self.qkv.weight, self.qkv.bias
        weight, bias = weight() if callable(weight) else weight, bias() if callable(bias) else bias
        weight = weight.dequantize() if weight.is_quantized else weight
        weights, biases = weight.chunk(3), bias.chunk(3) if bias is not None else (None,) * 3
        inputs = (query, key, value)
        return [nn.functional.linear(x, w, b) for x, w, b in zip(inputs, weights, biases, strict=True)]

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = True,
        attn_mask: torch.Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        unbatched = query.dim() == 2
        same = (key is query, value is query)
        if unbatched:
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
        elif not self.batch_first:
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        key, value = query if same[0] else key, query if same[1] else value  # keep the self-attention path
        batch, length, dim = query.shape
        q, k, v = (
            x.reshape(batch, x.shape[1], self.heads, dim // self.heads).transpose(1, 2)
            for x in self._project(query, key, value)
        )
        mask = _additive(attn_mask, q.dtype)
        if mask is not None and mask.dim() == 3:  # (batch × heads, L, S)
            mask = mask.view(batch, self.heads, length, -1)
        if key_padding_mask is not None:
            padding = _additive(key_padding_mask, q.dtype).view(batch, 1, 1, -1)
            mask = padding if mask is None else mask + padding
        causal = is_causal and mask is None
        if need_weights:
            scores = q @ k.transpose(-2, -1) / (q.shape[-1] ** 0.5)
            if causal:
                scores = scores + _additive(torch.ones(length, k.shape[2], dtype=torch.bool).triu(1), q.dtype)
            weights = (scores if mask is None else scores + mask).softmax(-1)
            attended = weights @ v
        else:
            attended = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
            weights = None
        out = self.out(attended.transpose(1, 2).reshape(batch, length, dim))
        if weights is not None:
            weights = weights.mean(1) if average_attn_weights else weights
            weights = weights.squeeze(0) if unbatched else weights
        if unbatched:
            return out.squeeze(0), weights
        return (out if self.batch_first else out.transpose(0, 1)), weights


def _additive(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """A MultiheadAttention mask as an additive float mask (True, "not attended", becomes -inf)."""
    if mask is None or mask.dtype != torch.bool:
        return None if mask is None else mask.to(dtype)
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(mask, float("-inf"))


def linear_attention(module: nn.Module) -> int:
    """Replace, in place, each `nn.MultiheadAttention` under `module` that `LinearAttention` can compute;
    returns how many were replaced."""
    replaced = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.MultiheadAttention) and LinearAttention.converts(child):
                setattr(parent, name, LinearAttention(child).to(child.out_proj.weight.device))
                replaced += 1
    return replaced


def quantize_int8(adapter: Any) -> bool:
    """Dynamic int8 quantisation of the Linear layers (attention projections included) of an adapter's
    torch model, in place (CPU only). Returns whether anything was quantised."""
    done = False
    for attribute in QUANTIZABLE_ATTRIBUTES:
        module = getattr(adapter, attribute, None)
        if not isinstance(module, nn.Module):
            continue
        linear_attention(module)
        if not any(isinstance(layer, nn.Linear) for layer in module.modules()):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantized = torch.ao.quantization.quantize_dynamic(module, {nn.Linear}, dtype=torch.qint8)
        for layer in quantized.modules():
            if isinstance(layer, torch.ao.nn.quantized.dynamic.Linear):
                # what the float weight was, where code asks `layer.weight.dtype` (a method here): open_clip's
                # text tower reads it under this name (its hook for int8 layers) to cast its embeddings
                layer.int8_original_dtype = torch.float32
        setattr(adapter, attribute, quantized)
        done = True
    return done

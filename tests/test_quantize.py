"""MMDEMO_QUANTIZE=int8's rewrite of nn.MultiheadAttention: the same results for every way models call it."""

import copy
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from mmdemo.serving.quantize import LinearAttention, quantize_int8

LENGTH, CONTEXT, DIM, HEADS = 10, 7, 64, 4
CAUSAL = torch.full((LENGTH, LENGTH), float("-inf")).triu_(1)  # open_clip's text tower: an additive mask
PADDED = torch.zeros(3, CONTEXT, dtype=torch.bool)
PADDED[0, 5:] = True  # the fusion head: some clips have fewer steps than others

CALLS = {
    "self, weights": ("self", {}),
    "self, float causal mask": ("self", {"need_weights": False, "attn_mask": CAUSAL}),
    "self, bool mask, weights": ("self", {"attn_mask": CAUSAL.isinf()}),
    "self, per-head mask": ("self", {"need_weights": False, "attn_mask": CAUSAL.expand(3 * HEADS, -1, -1)}),
    "self, is_causal": ("self", {"need_weights": False, "attn_mask": CAUSAL.isinf(), "is_causal": True}),
    "cross, weights": ("cross", {}),
    "cross, padding": ("cross", {"key_padding_mask": PADDED}),
    "cross, padding, per-head weights": (
        "cross",
        {"key_padding_mask": PADDED, "average_attn_weights": False},
    ),
    "cross, padding, no weights": ("cross", {"key_padding_mask": PADDED, "need_weights": False}),
}


def _inputs(kind: str, batch_first: bool) -> tuple[torch.Tensor, ...]:
    def tokens(length: int) -> torch.Tensor:
        x = torch.randn(3, length, DIM)
        return x if batch_first else x.transpose(0, 1)

    x = tokens(LENGTH)
    if kind == "self":
        return x, x, x
    context = tokens(CONTEXT)
    return x, context, context


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("call", list(CALLS))
def test_linear_attention_computes_what_multihead_attention_does(call, batch_first):
    torch.manual_seed(0)
    attention = nn.MultiheadAttention(DIM, HEADS, batch_first=batch_first).eval()
    rewritten = LinearAttention(attention).eval()
    kind, options = CALLS[call]
    inputs = _inputs(kind, batch_first)
    with torch.inference_mode():
        expected, expected_weights = attention(*inputs, **options)
        got, got_weights = rewritten(*inputs, **options)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert (got_weights is None) == (expected_weights is None)
    if expected_weights is not None:
        torch.testing.assert_close(got_weights, expected_weights, rtol=1e-5, atol=1e-5)


def test_int8_quantises_the_attention_projections_and_keeps_cross_attention_working():
    torch.manual_seed(0)
    model = nn.Module()
    model.attention = nn.MultiheadAttention(DIM, HEADS, batch_first=True).eval()
    reference = copy.deepcopy(model.attention)
    adapter = SimpleNamespace(model=model)
    assert quantize_int8(adapter)
    quantized = adapter.model.attention
    assert isinstance(quantized, LinearAttention)
    assert "quantized.dynamic" in type(quantized.qkv).__module__
    assert "quantized.dynamic" in type(quantized.out).__module__
    for kind, options in (("self", {}), ("cross", {"key_padding_mask": PADDED})):
        inputs = _inputs(kind, batch_first=True)
        with torch.inference_mode():
            expected, got = reference(*inputs, **options)[0], quantized(*inputs, **options)[0]
        assert nn.functional.cosine_similarity(got.flatten(), expected.flatten(), dim=0) > 0.99

"""Subsampling 2/4/8 (model.subsample) in every transcription model: output shapes and lengths, a recording's
output does not depend on the rest of its batch (whatever the padding holds), streaming chunks equal the whole,
intermediate CTC outputs, and the blank bias of the output layer."""
from __future__ import annotations

import pytest
import torch

from seehear.errors import ConfigError
from seehear.models import create_model, list_models

UNITS, BANDS = 12, 40
ASR = [s.name for s in list_models(task="transcribe")]
SMALL = {"conformer_ctc": {"dim": 48, "layers": 2, "heads": 2, "ffn_dim": 96},
         "transformer_ctc": {"dim": 48, "layers": 2, "heads": 2, "ffn_dim": 96},
         "bilstm_ctc": {"hidden": 32, "layers": 2}, "lstm_ctc_stream": {"hidden": 32, "layers": 2}}


def small(name: str, factor: int, **kw):
    return create_model(name, UNITS, 1, (BANDS, 0), subsample=factor, **{**SMALL.get(name, {}), **kw})


@pytest.mark.parametrize("factor", [2, 4, 8])
@pytest.mark.parametrize("name", ASR)
def test_lengths_and_padding_invariance(name, factor):
    torch.manual_seed(0)
    m = small(name, factor).eval()
    assert m.frame_factor == factor
    lengths = torch.tensor([61, 45, 17, 3])  # odd lengths: every stage has a ragged end
    x = torch.randn(4, 1, BANDS, 61)
    with torch.no_grad():
        full, n = m(x, lengths)
        assert n.tolist() == [-(-int(v) // factor) for v in lengths]  # ceil(T / factor), at every factor
        assert full.shape == (4, int(n.max()), UNITS)
        garbage = x.clone()
        for b, k in enumerate(lengths.tolist()):
            garbage[b, ..., k:] = 100 * torch.randn_like(garbage[b, ..., k:])  # padding holds anything at all
        noisy, _ = m(garbage, lengths)
        for b, k in enumerate(lengths.tolist()):
            alone, n1 = m(x[b:b + 1, ..., :k], lengths[b:b + 1])
            j = int(n1[0])
            assert j == int(n[b])
            assert torch.allclose(full[b, :j], alone[0, :j], atol=1e-4), f"{name} x{factor}: batch leaked into {b}"
            assert torch.allclose(noisy[b, :j], alone[0, :j], atol=1e-4), f"{name} x{factor}: padding leaked"


@pytest.mark.parametrize("factor", [2, 8])
def test_streaming_chunks_equal_whole_at_other_factors(factor):
    torch.manual_seed(0)
    m = small("lstm_ctc_stream", factor).eval()
    x = torch.randn(1, 1, BANDS, 101)
    with torch.no_grad():
        whole, n = m(x, torch.tensor([101]))
        state, parts, i = None, [], 0
        while i + 3 * factor <= 101:
            out, state = m.step(x[..., i:i + 3 * factor], state)
            parts.append(out)
            i += 3 * factor
        out, state = m.step(x[..., i:], state)
        parts += [out, m.flush(state)]
    chunked = torch.cat(parts, dim=1)
    assert chunked.shape == whole.shape == (1, -(-101 // factor), UNITS)
    assert torch.allclose(chunked, whole, atol=1e-5)


def test_bad_factor_is_a_one_line_error():
    with pytest.raises(ConfigError, match="model.subsample"):
        small("conformer_ctc", 3)
    with pytest.raises(ConfigError, match="model.subsample"):
        small("bilstm_ctc", 16)


@pytest.mark.parametrize("name", ["conformer_ctc", "transformer_ctc"])
def test_intermediate_ctc_output(name):
    torch.manual_seed(0)
    m = small(name, 4, layers=4).eval()
    assert m.inter_layer == 2
    x, lengths = torch.randn(2, 1, BANDS, 40), torch.tensor([40, 23])
    with torch.no_grad():
        logits, n = m(x, lengths)
        logits2, n2, middle = m(x, lengths, inter=True)
    assert torch.equal(logits, logits2) and torch.equal(n, n2)
    assert middle.shape == logits.shape and not torch.allclose(middle, logits)  # another layer's output


@pytest.mark.parametrize("name", ASR)
def test_blank_bias_is_set_on_the_output_layer(name):
    from seehear.models.asr.common import output_layer, set_blank_bias

    m = small(name, 4)
    set_blank_bias(m, 2.5)
    layer = output_layer(m)
    assert layer.out_features == UNITS and float(layer.bias[0].detach()) == 2.5
    m.eval()
    x = torch.zeros(1, 1, BANDS, 20)
    with torch.no_grad():
        before = m(x, torch.tensor([20]))[0][0, :, 0]
        set_blank_bias(m, -2.5)
        after = m(x, torch.tensor([20]))[0][0, :, 0]
    assert torch.allclose(before - after, torch.full_like(before, 5.0), atol=1e-4)  # the blank logit moved by 5

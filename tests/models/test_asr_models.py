"""Every registered transcription model: forward and backward on padded batches, output lengths, padding does
not change a recording's output, safetensors round trip; the streaming model gives the same scores in chunks."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from seehear.models import create_model, list_models

UNITS, BANDS = 12, 40
ASR = [s.name for s in list_models(task="transcribe")]


def test_registry_lists_transcription_models():
    assert {"conformer_ctc", "transformer_ctc", "bilstm_ctc", "lstm_ctc_stream"} <= set(ASR)
    assert all(s.sequence and s.modality == "audio" for s in list_models(task="transcribe"))


@pytest.mark.parametrize("name", ASR)
def test_forward_backward_lengths_roundtrip(name, tmp_path):
    torch.manual_seed(0)
    m = create_model(name, UNITS, 1, (BANDS, 0))
    x, lengths = torch.randn(3, 1, BANDS, 57), torch.tensor([57, 40, 9])
    x[1, ..., 40:], x[2, ..., 9:] = 0, 0  # padded frames are zero, as the Transcriber's masked features are
    m.train()
    logits, n = m(x, lengths)
    assert logits.shape[0] == 3 and logits.shape[2] == UNITS and logits.shape[1] == int(n.max())
    assert n.tolist() == sorted(n.tolist(), reverse=True) and int(n[-1]) >= 1
    assert n[0] == -(-57 // 4)  # 4x time subsampling (40 ms output frames at a 10 ms hop)
    lp = torch.log_softmax(logits, -1).transpose(0, 1)
    loss = torch.nn.functional.ctc_loss(lp, torch.tensor([1, 2, 3, 4, 5, 1]), n, torch.tensor([2, 2, 2]))
    loss.backward()
    for pname, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname

    m.eval()
    with torch.no_grad():
        full, _ = m(x, lengths)
        alone, n_alone = m(x[1:2, :, :, :40], lengths[1:2])  # the same recording without batch padding
    k = int(n_alone[0])
    assert torch.allclose(full[1, :k], alone[0, :k], atol=1e-4), "padding leaked into a shorter recording"

    save_file(m.state_dict(), str(tmp_path / "w.safetensors"))
    fresh = create_model(name, UNITS, 1, (BANDS, 0))
    fresh.load_state_dict(load_file(str(tmp_path / "w.safetensors")))
    fresh.eval()
    with torch.no_grad():
        assert torch.equal(fresh(x, lengths)[0], full)


def test_streaming_model_chunks_equal_whole():
    torch.manual_seed(0)
    m = create_model("lstm_ctc_stream", UNITS, 1, (BANDS, 0)).eval()
    x = torch.randn(1, 1, BANDS, 203)  # not a multiple of the 4-frame stack: the last stack is zero-padded
    with torch.no_grad():
        whole, n = m(x, torch.tensor([203]))
        state, parts = None, []
        for i in range(0, 200, 8):
            out, state = m.step(x[..., i:i + 8], state)
            parts.append(out)
        out, state = m.step(x[..., 200:], state)
        parts += [out, m.flush(state)]
    chunked = torch.cat(parts, dim=1)
    assert chunked.shape == whole.shape == (1, int(n[0]), UNITS)
    assert torch.allclose(chunked, whole, atol=1e-5)

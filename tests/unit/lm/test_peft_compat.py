"""Each of objlab's peft workarounds (objlab.lm.peft_compat), exercised directly on the tiny
model, so a peft upgrade that breaks one fails here, by name."""

from __future__ import annotations

import warnings

import pytest
import torch

from objlab.config import LoraSettings
from objlab.lm import peft_compat
from objlab.lm.adapters import BASE_ADAPTER


def peft_model(model_dir, adapters: dict[str, int], control_tokens: tuple[str, ...] = (), tie: bool = False):
    """A peft model with named adapters of random non-zero LoRA B weights (seed each)."""
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from objlab.lm.loading import add_control_tokens, lora_config

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    token_ids = add_control_tokens(tokenizer, model, control_tokens) if control_tokens else None
    names = list(adapters)
    torch.manual_seed(adapters[names[0]])
    wrapped = get_peft_model(model, lora_config(LoraSettings(r=4, alpha=8, dropout=0.0), token_ids), adapter_name=names[0])
    for name in names[1:]:
        torch.manual_seed(adapters[name])
        wrapped.add_adapter(name, lora_config(LoraSettings(r=4, alpha=8, dropout=0.0), token_ids))
    with torch.no_grad():
        for name, parameter in wrapped.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, 0.5)
    wrapped.eval()
    return wrapped, tokenizer, token_ids


def test_version_check_warns_outside_the_tested_range(monkeypatch):
    import peft

    peft_compat.check_version.cache_clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert peft_compat.check_version() == peft.__version__  # the installed, pinned peft: no warning
    peft_compat.check_version.cache_clear()
    monkeypatch.setattr(peft, "__version__", "9.0.0")
    with pytest.warns(RuntimeWarning, match="outside the range"):
        peft_compat.check_version()
    peft_compat.check_version.cache_clear()


def test_forward_hooks_route_each_row_through_its_adapter(tiny_model):
    model, _, _ = peft_model(tiny_model, {"first": 1, "second": 2})
    ids = torch.randint(3, 200, (3, 7))
    names = ["first", BASE_ADAPTER, "second"]
    with torch.no_grad(), peft_compat.forward_hooks(model, names):
        mixed = model(input_ids=ids).logits
    alone = []
    with torch.no_grad():
        for row, name in enumerate(names):
            if name == BASE_ADAPTER:
                with model.disable_adapter():
                    alone.append(model(input_ids=ids[row : row + 1]).logits[0])
            else:
                model.set_adapter(name)
                alone.append(model(input_ids=ids[row : row + 1]).logits[0])
    torch.testing.assert_close(mixed, torch.stack(alone))
    assert not torch.allclose(alone[0], alone[1])  # the adapters really differ from the base
    with torch.no_grad(), peft_compat.forward_hooks(model, None):  # None installs nothing
        model.set_adapter("second")
        torch.testing.assert_close(model(input_ids=ids[2:]).logits[0], alone[2])


def test_plain_output_layer_under_the_token_wrapper(tiny_tied_model):
    from peft.utils.other import TrainableTokensWrapper

    model, tokenizer, token_ids = peft_model(tiny_tied_model, {"cft": 3}, control_tokens=("<SAFE>", "<UNSAFE>"))
    head = model.get_base_model().get_output_embeddings()
    assert isinstance(head, TrainableTokensWrapper)  # tied embeddings: the wrapper wraps lm_head too
    vocab_limit = min(token_ids)
    layer = peft_compat.plain_output_layer(head, vocab_limit)
    assert isinstance(layer, torch.nn.Linear) and layer.weight.shape[0] > vocab_limit
    with pytest.raises(TypeError, match="fall inside the scored vocabulary"):
        peft_compat.plain_output_layer(head, vocab_limit + 1)
    plain = torch.nn.Linear(4, 4)
    assert peft_compat.plain_output_layer(plain, 4) is plain


def test_tokenless_adapters_beside_a_cft_adapter(tiny_model, tmp_path):
    """A plain adapter loads after a CFT one (peft's load map asked it for token rows), and a
    mixed batch routes its rows to the original embedding (peft looked its name up among the
    token adapters)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from objlab.lm.loading import add_control_tokens

    cft, _, _ = peft_model(tiny_model, {"cft": 3}, control_tokens=("<SAFE>", "<UNSAFE>"))
    cft.save_pretrained(str(tmp_path / "cft"), save_embedding_layers=False)
    plain, _, _ = peft_model(tiny_model, {"plain": 4})
    plain.save_pretrained(str(tmp_path / "plain"), save_embedding_layers=False)

    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    add_control_tokens(AutoTokenizer.from_pretrained(tiny_model), base, ("<SAFE>", "<UNSAFE>"))
    model = PeftModel.from_pretrained(base, str(tmp_path / "cft" / "cft"), adapter_name="cft", is_trainable=False)
    peft_compat.route_tokenless_adapters(model, BASE_ADAPTER)
    model.load_adapter(str(tmp_path / "plain" / "plain"), adapter_name="plain", is_trainable=False)
    peft_compat.route_tokenless_adapters(model, BASE_ADAPTER)  # idempotent
    model.eval()
    ids = torch.randint(3, 200, (2, 6))
    with torch.no_grad():
        mixed = model(input_ids=ids, adapter_names=["plain", "cft"]).logits
        model.set_adapter("plain")
        plain_alone = model(input_ids=ids[:1]).logits[0]
        model.set_adapter("cft")
        cft_alone = model(input_ids=ids[1:]).logits[0]
    torch.testing.assert_close(mixed[0], plain_alone)
    torch.testing.assert_close(mixed[1], cft_alone)


def test_folded_lora_gives_the_adapter_and_restores_the_weights(tiny_model, monkeypatch):
    """Inside ``folded_lora`` the model computes with W + BA in the base layers and the LoRA
    branches off, giving the adapter's logits (float rounding); on exit, even from an error, the
    very same weight tensors are back and the branches on. It declines where folding would
    not give the same policy (bfloat16 weights, two adapters active, too little memory)."""
    model, _, _ = peft_model(tiny_model, {"policy": 3})
    ids = torch.randint(3, 200, (2, 9))
    with torch.no_grad():
        expected = model(input_ids=ids).logits
        with model.disable_adapter():
            base = model(input_ids=ids).logits
    weights = {name: parameter for name, parameter in model.named_parameters()}
    with torch.no_grad(), peft_compat.folded_lora(model) as folded:
        assert folded
        torch.testing.assert_close(model(input_ids=ids).logits, expected, rtol=1e-5, atol=1e-5)
        assert not any(parameter.requires_grad for name, parameter in model.named_parameters() if "base_layer" in name)
    assert not torch.allclose(expected, base, atol=1e-3)  # the adapter really moves the logits
    assert all(weights[name] is parameter for name, parameter in model.named_parameters())
    with pytest.raises(RuntimeError, match="inside"), peft_compat.folded_lora(model):
        raise RuntimeError("inside")
    assert all(weights[name] is parameter for name, parameter in model.named_parameters())
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, expected, rtol=0, atol=0)

    monkeypatch.setattr(peft_compat, "_total_bytes", lambda device: 1000)  # copies would not fit
    with peft_compat.folded_lora(model) as folded:
        assert not folded
    monkeypatch.undo()
    two, _, _ = peft_model(tiny_model, {"first": 1, "second": 2})
    two.base_model.set_adapter(["first", "second"])
    with peft_compat.folded_lora(two) as folded:
        assert not folded
    half, _, _ = peft_model(tiny_model, {"policy": 3})
    half.to(torch.bfloat16)
    with peft_compat.folded_lora(half) as folded:
        assert not folded


def test_folded_lora_rewrites_its_kept_buffers_with_the_adapter_of_the_moment(tiny_model):
    """With ``FoldBuffers`` (what the training loop keeps), every call folds into the same
    tensors, and folds the adapter as it is then: after an optimiser step changes B, the next
    call's logits are the changed adapter's, not the previous fold's."""
    model, _, _ = peft_model(tiny_model, {"policy": 3})
    ids = torch.randint(3, 200, (2, 9))
    buffers = peft_compat.FoldBuffers()
    pointers = []
    for _ in range(2):
        with torch.no_grad():
            expected = model(input_ids=ids).logits
            with peft_compat.folded_lora(model, buffers=buffers) as folded:
                assert folded
                torch.testing.assert_close(model(input_ids=ids).logits, expected, rtol=1e-5, atol=1e-5)
                pointers.append(sorted(module.base_layer.weight.data_ptr() for module in model.modules() if hasattr(module, "lora_B")))
            for name, parameter in model.named_parameters():
                if "lora_B" in name:
                    parameter.add_(0.05 * torch.randn_like(parameter))  # "a training step"
    assert pointers[0] == pointers[1]
    originals = {module.base_layer.weight.data_ptr() for module in model.modules() if hasattr(module, "lora_B")}
    assert originals.isdisjoint(pointers[0])  # the trained model's own weights were never written

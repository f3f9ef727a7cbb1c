"""The chunked, recomputing log-prob and KL functions against plain autograd on full logits."""

import pytest
import torch

from objlab.lm.logits import LogitHead, LogitTransform


def make_head(vocab=50, dim=16, bias=False, transform=LogitTransform(), vocab_limit=None, chunk=7, seed=0):
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(vocab, dim, generator=generator, dtype=torch.float64)
    b = torch.randn(vocab, generator=generator, dtype=torch.float64) if bias else None
    return LogitHead(weight=weight, bias=b, transform=transform, vocab_limit=vocab_limit or vocab, chunk=chunk)


def naive_logits(head, hidden):
    logits = hidden @ head.weight[: head.vocab_limit].T
    if head.bias is not None:
        logits = logits + head.bias[: head.vocab_limit]
    logits = logits * head.transform.scale
    if head.transform.softcap:
        logits = head.transform.softcap * torch.tanh(logits / head.transform.softcap)
    return logits


CASES = [
    dict(),
    dict(bias=True),
    dict(transform=LogitTransform(scale=0.5, softcap=3.0)),
    dict(vocab_limit=40, chunk=3),
]


@pytest.mark.parametrize("case", CASES)
def test_token_logps_value_and_gradient(case):
    head = make_head(**case)
    hidden = torch.randn(23, 16, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, head.vocab_limit, (23,))
    weights = torch.randn(23, dtype=torch.float64)
    ours = head.token_logps(hidden, targets)
    (ours.double() * weights).sum().backward()
    grad_ours = hidden.grad.clone()
    hidden.grad = None
    reference = torch.log_softmax(naive_logits(head, hidden), -1).gather(1, targets[:, None]).squeeze(1)
    (reference * weights).sum().backward()
    torch.testing.assert_close(ours.double(), reference, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad_ours, hidden.grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", CASES)
def test_kl_value_and_gradient(case):
    head = make_head(**case)
    hidden = torch.randn(19, 16, dtype=torch.float64, requires_grad=True)
    ref_hidden = torch.randn(19, 16, dtype=torch.float64)
    weights = torch.randn(19, dtype=torch.float64)
    ours = head.kl(hidden, ref_hidden)
    (ours.double() * weights).sum().backward()
    grad_ours = hidden.grad.clone()
    hidden.grad = None
    log_p = torch.log_softmax(naive_logits(head, hidden), -1)
    log_q = torch.log_softmax(naive_logits(head, ref_hidden), -1)
    reference = (log_p.exp() * (log_p - log_q)).sum(-1)
    (reference * weights).sum().backward()
    torch.testing.assert_close(ours.double(), reference, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad_ours, hidden.grad, rtol=1e-4, atol=1e-5)  # fp32 logits vs fp64 reference


def test_kl_of_identical_distributions_is_zero():
    head = make_head()
    hidden = torch.randn(5, 16, dtype=torch.float64)
    assert torch.allclose(head.kl(hidden, hidden), torch.zeros(5, dtype=torch.float32), atol=1e-6)


def test_empty_selection():
    head = make_head()
    assert head.token_logps(torch.zeros(0, 16, dtype=torch.float64), torch.zeros(0, dtype=torch.long)).shape == (0,)

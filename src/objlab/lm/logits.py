"""Token log-probs and per-token KL from hidden states, without materialising full logits.

Every objective needs log pi(y_t | x, y_<t) only at response positions; KL needs the full
distribution there too. Computing ``lm_head`` on every position of a padded batch and keeping
the fp32 [batch, length, vocab] logits for backward is what dominates memory in plain loops
(and TRL's) at large vocabularies. Here the head is applied to the selected response positions
only, in chunks, and the backward pass recomputes each chunk's softmax instead of storing it:
memory is O(positions x hidden) instead of O(positions x vocab), for one extra matmul.

The head is frozen under LoRA (objlab never trains ``lm_head``), so only the gradient with
respect to the hidden states is produced. Both functions are tested against plain autograd.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from objlab.lm.peft_compat import plain_output_layer


@dataclass(frozen=True)
class LogitTransform:
    """What a model does to ``hidden @ W.T`` before the softmax: a scale, then a tanh soft-cap.

    Gemma-2 caps logits (``final_logit_softcapping``); Cohere multiplies by ``logit_scale``;
    Granite divides by ``logits_scaling``.
    """

    scale: float = 1.0
    softcap: float | None = None

    def apply(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Transformed logits, and d(out)/d(logits) factor for the cap (None when no cap)."""
        if self.scale != 1.0:
            logits = logits * self.scale
        if self.softcap is None:
            return logits, None
        tanh = torch.tanh(logits / self.softcap)
        return tanh * self.softcap, (1 - tanh * tanh)

    def chain(self, grad: torch.Tensor, cap_factor: torch.Tensor | None) -> torch.Tensor:
        if cap_factor is not None:
            grad = grad * cap_factor
        if self.scale != 1.0:
            grad = grad * self.scale
        return grad


def _chunk_logits(hidden, weight, bias, transform, vocab_limit):
    logits = hidden @ weight[:vocab_limit].T
    if bias is not None:
        logits = logits + bias[:vocab_limit]
    return transform.apply(logits.float())


class _TokenLogprobs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, transform, vocab_limit, chunk):
        out = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
        lse = torch.empty_like(out)
        for start in range(0, hidden.shape[0], chunk):
            stop = start + chunk
            logits, _ = _chunk_logits(hidden[start:stop], weight, bias, transform, vocab_limit)
            lse[start:stop] = torch.logsumexp(logits, dim=-1)
            out[start:stop] = logits.gather(1, targets[start:stop, None]).squeeze(1) - lse[start:stop]
        ctx.save_for_backward(hidden, weight, bias, targets, lse)
        ctx.transform, ctx.vocab_limit, ctx.chunk = transform, vocab_limit, chunk
        return out

    @staticmethod
    def backward(ctx, grad_out):
        hidden, weight, bias, targets, lse = ctx.saved_tensors
        grad_hidden = torch.empty_like(hidden)
        w = weight[: ctx.vocab_limit]
        for start in range(0, hidden.shape[0], ctx.chunk):
            stop = start + ctx.chunk
            logits, cap = _chunk_logits(hidden[start:stop], weight, bias, ctx.transform, ctx.vocab_limit)
            g = grad_out[start:stop, None]
            grad_logits = -torch.exp(logits - lse[start:stop, None]) * g
            grad_logits.scatter_add_(1, targets[start:stop, None], g)
            grad_logits = ctx.transform.chain(grad_logits, cap)
            grad_hidden[start:stop] = (grad_logits.to(w.dtype) @ w).to(hidden.dtype)
        return grad_hidden, None, None, None, None, None, None


class _TokenKL(torch.autograd.Function):
    """KL(p || q) per position; p from ``hidden`` (with grad), q from ``ref_hidden`` (constant)."""

    @staticmethod
    def forward(ctx, hidden, ref_hidden, weight, bias, transform, vocab_limit, chunk):
        out = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk):
            stop = start + chunk
            log_p = torch.log_softmax(_chunk_logits(hidden[start:stop], weight, bias, transform, vocab_limit)[0], -1)
            log_q = torch.log_softmax(_chunk_logits(ref_hidden[start:stop], weight, bias, transform, vocab_limit)[0], -1)
            out[start:stop] = (log_p.exp() * (log_p - log_q)).sum(-1)
        ctx.save_for_backward(hidden, ref_hidden, weight, bias, out)
        ctx.transform, ctx.vocab_limit, ctx.chunk = transform, vocab_limit, chunk
        return out

    @staticmethod
    def backward(ctx, grad_out):
        hidden, ref_hidden, weight, bias, kl = ctx.saved_tensors
        grad_hidden = torch.empty_like(hidden)
        w = weight[: ctx.vocab_limit]
        for start in range(0, hidden.shape[0], ctx.chunk):
            stop = start + ctx.chunk
            logits, cap = _chunk_logits(hidden[start:stop], weight, bias, ctx.transform, ctx.vocab_limit)
            log_p = torch.log_softmax(logits, -1)
            log_q = torch.log_softmax(_chunk_logits(ref_hidden[start:stop], weight, bias, ctx.transform, ctx.vocab_limit)[0], -1)
            # d KL / d logits_p = p * (log p - log q - KL)
            grad_logits = log_p.exp() * (log_p - log_q - kl[start:stop, None]) * grad_out[start:stop, None]
            grad_logits = ctx.transform.chain(grad_logits, cap)
            grad_hidden[start:stop] = (grad_logits.to(w.dtype) @ w).to(hidden.dtype)
        return grad_hidden, None, None, None, None, None, None


@dataclass
class LogitHead:
    """The model's frozen output layer, applied to selected positions only."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    transform: LogitTransform
    vocab_limit: int
    chunk: int = 2048

    @classmethod
    def from_model(cls, causal_lm, vocab_limit: int | None = None, chunk: int = 2048) -> LogitHead:
        head = causal_lm.get_output_embeddings()
        limit = vocab_limit or head.weight.shape[0]
        head = plain_output_layer(head, limit)
        if not isinstance(head, torch.nn.Linear):
            raise TypeError(
                f"objlab needs a plain nn.Linear output layer, got {type(head).__name__} "
                "(is lm_head among the LoRA target modules? objlab keeps it frozen)"
            )
        config = causal_lm.config
        get = lambda name: getattr(config, name, None) or getattr(getattr(config, "text_config", None), name, None)
        scale = 1.0
        if get("logit_scale"):
            scale *= float(get("logit_scale"))
        if get("logits_scaling"):
            scale /= float(get("logits_scaling"))
        transform = LogitTransform(scale=scale, softcap=get("final_logit_softcapping"))
        return cls(weight=head.weight, bias=head.bias, transform=transform, vocab_limit=limit, chunk=chunk)

    def token_logps(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """log p(target | position) for each row of ``hidden`` ([M, d] -> [M], fp32)."""
        if hidden.shape[0] == 0:
            return hidden.new_zeros(0, dtype=torch.float32)
        return _TokenLogprobs.apply(hidden, self.weight, self.bias, targets, self.transform, self.vocab_limit, self.chunk)

    def kl(self, hidden: torch.Tensor, ref_hidden: torch.Tensor) -> torch.Tensor:
        """KL(policy || reference) over the vocabulary at each position ([M, d] x2 -> [M])."""
        if hidden.shape[0] == 0:
            return hidden.new_zeros(0, dtype=torch.float32)
        return _TokenKL.apply(hidden, ref_hidden.detach(), self.weight, self.bias, self.transform, self.vocab_limit, self.chunk)

    def full_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Plain (non-chunked) transformed logits; for tests and small inputs."""
        return _chunk_logits(hidden, self.weight, self.bias, self.transform, self.vocab_limit)[0]

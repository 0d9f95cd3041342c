"""The causal family's forward passes: one pass stopped after the deepest layer read, and ``generate()``.

Each reads the hidden states at a set of layers (0 = embeddings .. the number of layers = last, with the final
norm) in the same pass. Tokens that begin every row (the pattern's ``### Input:``, a chat template's system prompt)
are computed once for the batch: their keys and values are reused by every row (:meth:`Passes.shared_pass`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ...errors import ModelLoadError
from .pooling import MIN_SHARED_PREFIX, first_columns, position_ids, shared_prefix
from .settings import Generation

States = dict[int, torch.Tensor]  # layer -> states (b, t, h)


class _Stop(Exception):
    """Raised by a tap to end a forward pass once the deepest requested layer is read."""


class Passes:
    """The forward passes of one decoder-only LM (a transformers ``*ForCausalLM``, or its trunk alone)."""

    def __init__(self, model: Any, pad_id: int, num_layers: int):
        self.model = model
        self.pad_id = pad_id
        self.num_layers = num_layers
        layers = next((m for m in self.base.modules() if isinstance(m, nn.ModuleList) and len(m) == num_layers),
                      None)
        if layers is None:
            raise ModelLoadError(f"cannot find the {num_layers} decoder layers of {type(model).__name__}")
        self.layers: nn.ModuleList = layers

    @property
    def base(self) -> nn.Module:
        """The decoder stack without the LM head (what the LM head reads; for OPT, ``model.decoder``)."""
        try:
            trunk = self.model.get_decoder()
        except (AttributeError, NotImplementedError, ValueError):
            trunk = None
        return trunk if isinstance(trunk, nn.Module) else self.model.base_model  # type: ignore[no-any-return]

    @contextmanager
    def tap(self, layers: Sequence[int], stop: bool) -> Iterator[dict[int, list[torch.Tensor]]]:
        """Collect the hidden states at ``layers`` of every forward pass; with ``stop``, end the pass after the
        deepest (a pass that reads the last layer runs to its end)."""
        states: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}
        deepest = max(layers, default=0)
        handles = []
        for layer in states:
            if layer == self.num_layers:
                handles.append(self.base.register_forward_hook(_on_output(states[layer])))
            else:
                hook = _on_input(states[layer], stop and layer == deepest)
                handles.append(self.layers[layer].register_forward_pre_hook(hook, with_kwargs=True))
        try:
            yield states
        finally:
            for handle in handles:
                handle.remove()

    def forward_to(self, layers: Sequence[int], kwargs: dict[str, Any]) -> States:
        """States at ``layers`` from one forward call of the base model with ``kwargs``, stopped after the deepest."""
        with self.tap(layers, stop=True) as states:
            try:
                self.base(**kwargs)
            except _Stop:
                pass
        return {layer: found[0] for layer, found in states.items()}

    def one_pass(self, ids: torch.Tensor, mask: torch.Tensor, layers: Sequence[int]) -> States:
        """States ``(b, t, h)`` at each of ``layers`` from one forward pass of the base model, stopped after the
        deepest; the layers that may reuse a key/value cache (all but the embeddings) share one pass, the
        embeddings take their own (they are read before the first layer, so that pass costs a lookup)."""
        groups: dict[str | None, list[int]] = {}
        for layer in dict.fromkeys(layers):
            groups.setdefault(self.sharing(layer, ids.shape[1]), []).append(layer)
        found: States = {}
        for cache_arg, group in groups.items():
            shared = shared_prefix(ids, mask) if cache_arg else 0
            if cache_arg and shared >= MIN_SHARED_PREFIX and ids.shape[0] > 1:
                found.update(self.shared_pass(ids, mask, group, shared, cache_arg))
                continue
            kwargs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "use_cache": False}
            if "position_ids" in parameters(self.base.forward):  # as generate() sets them for left padding
                kwargs["position_ids"] = position_ids(mask)
            found.update(self.forward_to(group, kwargs))
        return found

    def sharing(self, layer: int, width: int) -> str | None:
        """The base model's cache argument when a pass to ``layer`` over ``width`` columns may reuse a key/value
        cache (position ids accepted, no sliding window shorter than the rows, not the embeddings); else None."""
        params = parameters(self.base.forward)
        cache_arg = next((k for k in ("cache", "past_key_values") if k in params), None)  # transformers 5.x, 4.x
        window = getattr(text_config(self.model), "sliding_window", None)  # a cache that drops old tokens
        fits = not isinstance(window, int) or width <= window
        return cache_arg if layer > 0 and "position_ids" in params and fits else None

    def new_cache(self) -> Any:
        """An empty key/value cache for the base model."""
        from transformers import DynamicCache

        return DynamicCache(config=self.model.config) if "config" in parameters(DynamicCache) else DynamicCache()

    def shared_pass(self, ids: torch.Tensor, mask: torch.Tensor, layers: Sequence[int], shared: int,
                    cache_arg: str) -> States:
        """:meth:`one_pass` for rows whose first ``shared`` real tokens are the same.

        The prefix runs once (one row) into a key/value cache that is repeated for the batch; the rest of each
        row runs over it, left-padded *after* the prefix (``prefix, pads, tokens``: the mask hides the pads and
        the position ids skip them, so every token sees what it sees in the plain pass). The states come back in
        the plain pass' layout (``pads, prefix, tokens``)."""
        b, width = ids.shape
        start = first_columns(mask)[:, None]
        prefix = ids[:1, int(start[0]):int(start[0]) + shared]
        cache = self.new_cache()
        head = self.forward_to(layers, {"input_ids": prefix, "attention_mask": torch.ones_like(prefix),
                                        "position_ids": torch.arange(shared, device=ids.device)[None],
                                        cache_arg: cache, "use_cache": True})
        cache.batch_repeat_interleave(b)
        # A row's k-th token after the prefix moves from column start + shared + k to start + k.
        rest_mask = mask[:, :width - shared]
        rest_ids = ids[:, shared:].masked_fill(rest_mask == 0, self.pad_id)
        tail = self.forward_to(layers, {"input_ids": rest_ids,
                                        "attention_mask": torch.cat([mask.new_ones(b, shared), rest_mask], 1),
                                        "position_ids": shared + position_ids(rest_mask),
                                        cache_arg: cache, "use_cache": True})
        target = torch.arange(width, device=ids.device)[None]
        source = torch.where(target < start, shared + target, torch.where(target < start + shared, target - start,
                                                                          target))
        out: States = {}
        for layer in layers:
            joined = torch.cat([head[layer].expand(b, -1, -1), tail[layer]], dim=1)  # prefix, pads, tokens
            out[layer] = torch.gather(joined, 1, source[..., None].expand(-1, -1, joined.shape[-1]))
        return out

    def generate(self, ids: torch.Tensor, mask: torch.Tensor, layers: Sequence[int], generation: Generation
                 ) -> tuple[States, States, torch.Tensor]:
        """One ``generate()``: per layer the prompt states ``(b, t, h)`` and the states over answer tokens 1..n-1
        ``(b, n-1, h)``, and the sequences ``(b, t+n)``."""
        kwargs = {"pad_token_id": self.pad_id, **generation.kwargs()}
        device = ids.device
        with self.tap(layers, stop=False) as states, torch.random.fork_rng(
                devices=[device] if device.type == "cuda" else [], enabled=generation.seed is not None):
            if generation.seed is not None:
                torch.manual_seed(generation.seed)
            out = self.model.generate(input_ids=ids, attention_mask=mask, **kwargs)
        seqs = out.sequences if hasattr(out, "sequences") else out
        prompt: States = {}
        steps: States = {}
        for layer, found in states.items():
            if not found:
                raise ModelLoadError(f"could not read hidden state {layer} of {type(self.model).__name__} in "
                                     "generate()")
            prompt[layer] = found[0]
            steps[layer] = torch.cat(found[1:], dim=1) if len(found) > 1 else found[0][:, :0]
        return prompt, steps, seqs

    def next_token_top_k(self, last: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and log-probabilities ``(b, k)`` of the ``k`` likeliest next tokens, highest first, from the
        last layer's states over the last prompt tokens ``(b, h)``."""
        logp = self.model.get_output_embeddings()(last).float().log_softmax(-1)
        values, tokens = logp.topk(k, dim=-1)
        return tokens, values


def _on_output(found: list[torch.Tensor]) -> Callable[..., None]:
    def on_output(module: nn.Module, args: Any, output: Any) -> None:
        found.append(output[0] if isinstance(output, tuple) else output.last_hidden_state)
    return on_output


def _on_input(found: list[torch.Tensor], stop: bool) -> Callable[..., None]:
    def on_input(module: nn.Module, args: Any, kwargs: Any) -> None:
        found.append(args[0] if args else kwargs["hidden_states"])
        if stop:
            raise _Stop
    return on_input


def answer_keep(new: torch.Tensor, tokenizer: Any, filter_words: Sequence[str] | None = None) -> torch.Tensor:
    """``(b, n-1)``: keep the state over answer token k when token k + 1 is neither special nor a filtered word."""
    skip = set(tokenizer.all_special_ids) | word_ids(tokenizer, filter_words)
    rows = [[int(t) not in skip for t in row[1:]] for row in new.tolist()]
    return torch.tensor(rows, dtype=torch.bool).reshape(new.shape[0], max(new.shape[1] - 1, 0))


def word_ids(tokenizer: Any, words: Sequence[str] | None) -> set[int]:
    """Token ids of ``words``, each tokenized alone with the tokenizer's special tokens (the reference's rule)."""
    return {i for w in words or [] for i in tokenizer.encode(w)}


def text_config(model: Any) -> Any:
    config = model.config
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def parameters(fn: Any) -> set[str]:
    return set(inspect.signature(fn).parameters)

"""One input, several questions: the causal family's batch for ``encode(texts, instructions=[...])``.

The answer pattern puts the input first (``### Input:\\n{input}\\n\\n### Instruction:\\n{instruction}...``), so
the prompts of one text under k questions begin with the same tokens. Those run once per text into a key/value
cache; the cache is repeated for the text's questions and only each prompt's remaining tokens (the question and
the response cue) run over it. A text's shared tokens are the longest run of tokens that begins *every* one of its
full prompts, as each is tokenized alone (so a question that tokenizes into the tokens before it, or a text cut
to fit differently under a longer question, shares less, never differently): every prompt sees exactly the
tokens, positions and mask it sees in a separate call.

Layout of the second pass, per prompt: ``pads, shared tokens | pads, own tokens``; the mask hides the pads and
the position ids skip them. Readouts without answers (``fst_gen``, ``avg_ppt``, any layer) come from it;
``output_value``\\ s that generate take the plain batch (:meth:`CausalEncoder.embed_batch`) instead. The encoder
builds and tokenizes the prompts; this module runs the passes over them.
"""

from __future__ import annotations

import torch

from ..base import Output
from .passes import Passes
from .pooling import left_pad, pool, position_ids
from .settings import CallSettings, OutputValue


def shares_input(call: CallSettings, output: Output) -> bool:
    """Whether :func:`question_vectors` serves this call: sentence vectors read without generating answers."""
    return output is Output.SENTENCE and not call.generations and not call.value.generates


def question_vectors(passes: Passes, call: CallSettings, ids: torch.Tensor, mask: torch.Tensor, owner: list[int]
                     ) -> torch.Tensor:
    """Vectors of the left-padded prompts ``ids``/``mask``, where prompt r asks a question about text
    ``owner[r]`` (a text's prompts next to each other); each row as :meth:`CausalEncoder.embed_batch` gives it
    for that prompt alone (within float rounding)."""
    value, layer = call.value, call.layer
    rows = [row[keep.bool()].tolist() for row, keep in zip(ids, mask, strict=True)]
    members: list[list[int]] = [[] for _ in range(max(owner, default=-1) + 1)]
    for r, g in enumerate(owner):
        members[g].append(r)
    starts = [len(_common_start([rows[r] for r in m])) for m in members]
    own = [rows[r][starts[g]:] for r, g in enumerate(owner)]
    cache_arg = passes.sharing(layer, max(starts) + max(map(len, own)))
    if cache_arg is None or min(starts) < 1:
        prompt = passes.one_pass(ids, mask, (layer,))[layer]
        return pool(value, prompt.float(), mask, prompt[:, :0], torch.zeros_like(mask[:, :0]).bool())
    device, group = ids.device, torch.tensor(owner, device=ids.device)
    heads = [rows[m[0]][:s] for m, s in zip(members, starts, strict=True)]
    head_ids, head_mask = (t.to(device) for t in left_pad(heads, passes.pad_id))
    cache = passes.new_cache()
    head = passes.forward_to((layer,), {"input_ids": head_ids, "attention_mask": head_mask,
                                        "position_ids": position_ids(head_mask), cache_arg: cache,
                                        "use_cache": True})[layer]
    cache.reorder_cache(group)  # one copy of a text's shared keys and values per question
    tail_ids, tail_mask = (t.to(device) for t in left_pad(own, passes.pad_id))
    joined_mask = torch.cat([head_mask[group], tail_mask], 1)
    seen = torch.tensor(starts, device=device)[group, None]
    tail = passes.forward_to((layer,), {"input_ids": tail_ids, "attention_mask": joined_mask,
                                        "position_ids": seen + position_ids(tail_mask), cache_arg: cache,
                                        "use_cache": True})[layer]
    if value is OutputValue.FST_GEN:
        return tail[:, -1].float()
    states = torch.cat([head[group], tail], 1).float()
    return pool(value, states, joined_mask, states[:, :0], torch.zeros_like(joined_mask[:, :0]).bool())


def _common_start(rows: list[list[int]]) -> list[int]:
    """The longest run of tokens that begins every row, leaving each row one token of its own at least."""
    n = min(len(r) for r in rows) - 1
    first = rows[0]
    for r in rows[1:]:
        n = next((i for i in range(n) if r[i] != first[i]), n)
    return first[:max(n, 0)]

from typing import Any

import torch

class AttentionFunction(torch.autograd.Function): ...

def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool = ...,
              scale: float | None = ..., mask: Any = ..., kv_lengths: Any = ...,
              q_offsets: Any = ..., window: Any = ..., alibi_slopes: Any = ...,
              softcap: float | None = ..., n_threads: int = ...) -> torch.Tensor: ...

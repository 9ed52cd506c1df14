"""qkv: exact, fast attention for NumPy and PyTorch, GGUF / Hugging Face / llama2.c models,
generation and exact attention maps as arrays.

    import numpy as np, qkv
    q = np.random.rand(1, 128, 8, 64).astype(np.float32)
    out = qkv.attention(q, q, q, causal=True)          # [batch, n, heads, dim], like q

    model = qkv.Model()                                 # the built-in story model
    print(model.generate("Once upon a time", max_new_tokens=32, temperature=0))
    maps = model.explain("The cat sat on the mat").attentions   # [layers, heads, T, T]

`qkv.torch.attention` is a torch.autograd.Function (imported on first use, as torch is large).
"""
from ._qkv import Error, InvalidArgument, attention_cpu_target
from ._kernels import (attention, attention_backward, attention_block, attention_probs, merge)
from ._model import Model, TextStream
from ._explain import Explanation

__version__ = "0.1.0"

__all__ = [
    "Error", "InvalidArgument", "attention", "attention_backward", "attention_block",
    "attention_probs", "merge", "Model", "TextStream", "Explanation", "attention_cpu_target",
]


def __getattr__(name):
    # qkv.torch on first use: importing torch costs a second, and the kernels do not need it.
    if name == "torch":
        import importlib
        return importlib.import_module(".torch", __name__)
    raise AttributeError(f"module 'qkv' has no attribute {name!r}")

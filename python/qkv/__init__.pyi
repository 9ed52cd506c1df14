# Type stubs of the qkv package (PEP 561: py.typed ships beside them).
from os import PathLike
from typing import Any, Iterator, Literal, Sequence, Tuple, Union, overload

import numpy as np
import numpy.typing as npt

__version__: str

ArrayLike = Any  # a NumPy array, a CPU torch tensor, or anything with the buffer protocol
Window = Union[None, int, Tuple[Union[int, None], Union[int, None]]]
Path = Union[str, PathLike[str]]

class Error(RuntimeError): ...
class InvalidArgument(Error, ValueError): ...

def attention_cpu_target() -> str: ...
@overload
def attention(q: ArrayLike, k: ArrayLike, v: ArrayLike, *, causal: bool = ...,
              scale: float | None = ..., mask: ArrayLike | None = ...,
              kv_lengths: ArrayLike | None = ..., q_offsets: ArrayLike | None = ...,
              window: Window = ..., alibi_slopes: ArrayLike | None = ...,
              softcap: float | None = ..., return_lse: Literal[False] = ...,
              out: ArrayLike | None = ..., precision: Literal["f32", "bf16"] = ...,
              backend: Literal["auto", "cpu", "reference"] = ..., n_threads: int = ...) -> Any: ...
@overload
def attention(q: ArrayLike, k: ArrayLike, v: ArrayLike, *, causal: bool = ...,
              scale: float | None = ..., mask: ArrayLike | None = ...,
              kv_lengths: ArrayLike | None = ..., q_offsets: ArrayLike | None = ...,
              window: Window = ..., alibi_slopes: ArrayLike | None = ...,
              softcap: float | None = ..., return_lse: Literal[True],
              out: ArrayLike | None = ..., precision: Literal["f32", "bf16"] = ...,
              backend: Literal["auto", "cpu", "reference"] = ...,
              n_threads: int = ...) -> Tuple[Any, Any]: ...
def attention_block(q: ArrayLike, k_block: ArrayLike, v_block: ArrayLike, *,
                    q_offset: int | ArrayLike | None = ..., causal: bool = ...,
                    scale: float | None = ..., mask: ArrayLike | None = ...,
                    kv_lengths: ArrayLike | None = ..., window: Window = ...,
                    alibi_slopes: ArrayLike | None = ..., softcap: float | None = ...,
                    out: ArrayLike | None = ..., n_threads: int = ...) -> Tuple[Any, Any]: ...
def merge(out_a: ArrayLike, lse_a: ArrayLike, out_b: ArrayLike, lse_b: ArrayLike, *,
          out: ArrayLike | None = ...) -> Tuple[Any, Any]: ...
def attention_probs(q: ArrayLike, k: ArrayLike, lse: ArrayLike, *, batch: int | None = ...,
                    head: int | None = ..., rows: Sequence[int] | None = ..., causal: bool = ...,
                    scale: float | None = ..., mask: ArrayLike | None = ...,
                    kv_lengths: ArrayLike | None = ..., q_offsets: ArrayLike | None = ...,
                    window: Window = ..., alibi_slopes: ArrayLike | None = ...,
                    softcap: float | None = ..., precision: Literal["f32", "bf16"] = ...,
                    n_threads: int = ...) -> Any: ...
def attention_backward(q: ArrayLike, k: ArrayLike, v: ArrayLike, out: ArrayLike, lse: ArrayLike,
                       dout: ArrayLike, *, causal: bool = ..., scale: float | None = ...,
                       mask: ArrayLike | None = ..., kv_lengths: ArrayLike | None = ...,
                       q_offsets: ArrayLike | None = ..., window: Window = ...,
                       alibi_slopes: ArrayLike | None = ..., softcap: float | None = ...,
                       dq: ArrayLike | None = ..., dk: ArrayLike | None = ...,
                       dv: ArrayLike | None = ..., backend: Literal["auto", "cpu", "reference"] = ...,
                       n_threads: int = ...) -> Tuple[Any, Any, Any]: ...

class TextStream(Iterator[str]):
    stop_reason: str
    def __iter__(self) -> TextStream: ...
    def __next__(self) -> str: ...
    def close(self) -> None: ...

Prompt = Union[str, Sequence[int]]
Message = Union[dict[str, Any], Tuple[str, str]]

class Model:
    architecture: str
    is_decoder: bool
    n_params: int
    n_vocab: int
    n_ctx: int
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    path: str
    def __init__(self, path: Path | None = ..., *, tokenizer: Path | None = ...,
                 dot: Literal["exact", "int8"] = ...) -> None: ...
    def describe(self) -> str: ...
    def tokenize(self, text: str, *, add_special: bool = ..., parse_special: bool = ...) -> list[int]: ...
    def detokenize(self, ids: Sequence[int], *, skip_special: bool = ...) -> str: ...
    def token(self, id: int) -> str: ...
    def eval(self, ids: Sequence[int], *, n_threads: int = ...) -> npt.NDArray[np.float32]: ...
    def generate(self, prompt: Prompt, *, max_new_tokens: int = ..., temperature: float = ...,
                 top_k: int = ..., top_p: float = ..., min_p: float = ...,
                 repeat_penalty: float = ..., repeat_last_n: int = ..., seed: int = ...,
                 stop: str | Sequence[str] | None = ..., stop_at_eos: bool = ...,
                 add_special: bool = ..., parse_special: bool = ..., n_ctx: int = ..., kv_type: Literal["f32", "f16", "q8_0"] = ...,
                 n_threads: int = ...) -> str: ...
    def generate_details(self, prompt: Prompt, **sampling: Any) -> dict[str, Any]: ...
    def stream(self, prompt: Prompt, **sampling: Any) -> TextStream: ...
    def chat_prompt(self, messages: str | Sequence[Message], *, system: str | None = ...,
                    add_generation_prompt: bool = ..., variables: dict[str, Any] | None = ...) -> str: ...
    def chat(self, messages: str | Sequence[Message], *, system: str | None = ...,
             variables: dict[str, Any] | None = ..., **sampling: Any) -> str: ...
    @overload
    def embed(self, texts: str, *, pooling: Literal["cls", "mean", "pooler"] = ...,
              normalize: bool = ..., parse_special: bool = ...,
              n_threads: int = ...) -> npt.NDArray[np.float32]: ...
    @overload
    def embed(self, texts: Sequence[str], *, pooling: Literal["cls", "mean", "pooler"] = ...,
              normalize: bool = ..., parse_special: bool = ...,
              n_threads: int = ...) -> npt.NDArray[np.float32]: ...
    def explain(self, text: str, layers: Sequence[int] | None = ..., heads: Sequence[int] | None = ...,
                *, max_new_tokens: int = ..., add_special: bool = ..., parse_special: bool = ...,
                max_floats: int = ...,
                n_threads: int = ...) -> Explanation: ...

class Explanation:
    ids: list[int]
    tokens: list[str]
    word_ids: list[int]
    n_prompt: int
    layers: list[int]
    heads: list[int]
    model: str
    @property
    def attentions(self) -> npt.NDArray[np.float32]: ...
    def entropy(self) -> npt.NDArray[np.float64]: ...
    def rollout(self) -> npt.NDArray[np.float32]: ...
    def look_scores(self) -> dict[str, npt.NDArray[np.float64]]: ...
    def html(self, path: Path | None = ...) -> str: ...
    def png(self, path: Path, layer: int, head: int, *, cell: int = ...) -> None: ...
    def npy(self, path: Path) -> None: ...
    def to_transformers(self, as_torch: bool | None = ...) -> Tuple[Any, ...]: ...

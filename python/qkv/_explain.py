"""qkv.Explanation: exact attention maps of a run and the analyses of include/qkv/explain.h."""
import os as _os


class Explanation:
    """What Model.explain() returns. Row = query position, column = key position; rows of a
    decoder are zero right of the diagonal; rows a capture's memory budget left out are NaN."""

    def __init__(self, impl):
        self._impl = impl
        self._attentions = None

    ids = property(lambda self: self._impl.ids, doc="token ids, one per map row")
    tokens = property(lambda self: self._impl.tokens,
                      doc="each token's label: its text, \\xNN for a byte of a partial UTF-8 "
                          "character")
    word_ids = property(lambda self: self._impl.word_ids, doc="word index of each token")
    n_prompt = property(lambda self: self._impl.n_prompt, doc="tokens of the prompt")
    layers = property(lambda self: self._impl.layers, doc="captured layer indices")
    heads = property(lambda self: self._impl.heads, doc="captured head indices")
    model = property(lambda self: self._impl.model, doc="the model's one-line description")

    @property
    def attentions(self):
        """float32 ndarray [layers, heads, T, T] (read-only; the same numbers as the .npy of
        `qkv explain --npy`)."""
        if self._attentions is None:
            a = self._impl._attentions()
            a.flags.writeable = False
            self._attentions = a
        return self._attentions

    def entropy(self):
        """Shannon entropy (nats) of every row: float64 [layers, heads, T]."""
        return self._impl._entropy()

    def rollout(self):
        """Attention rollout (Abnar & Zuidema 2020) over the captured layers: [T, T]."""
        return self._impl._rollout()

    def look_scores(self):
        """Where each head looks: a dict of float64 [layers, heads] arrays: previous, first,
        self, same_word, induction, entropy and rows (the rows averaged over)."""
        return self._impl._look_scores()

    def html(self, path=None):
        """The interactive HTML report (self-contained); written to `path` when given, and
        returned as a string."""
        page = self._impl._html()
        if path is not None:
            with open(_os.fspath(path), "w", encoding="utf-8") as f:
                f.write(page)
        return page

    def png(self, path, layer, head, *, cell=0):
        """A PNG of one map (model layer and head indices, both captured); cell: pixels per
        entry (0: by size)."""
        self._impl._png(_os.fspath(path), int(layer), int(head), int(cell))

    def npy(self, path):
        """The maps as `qkv explain --npy` writes them (and path + '.tokens.json')."""
        self._impl._write_npy(_os.fspath(path))

    def to_transformers(self, as_torch=None):
        """A tuple with one [1, heads, T, T] array per captured layer, the layout of transformers'
        output_attentions, for bertviz's head_view / model_view and CircuitsVis. Torch tensors
        when torch is importable (bertviz stacks them with torch.stack), else NumPy arrays;
        as_torch forces one or the other."""
        maps = self.attentions
        if as_torch is None:
            try:
                import torch  # noqa: F401
                as_torch = True
            except ImportError:
                as_torch = False
        if as_torch:
            import torch
            return tuple(torch.from_numpy(maps[i:i + 1].copy()).reshape(1, *maps.shape[1:])
                         for i in range(maps.shape[0]))
        return tuple(maps[i][None] for i in range(maps.shape[0]))

    def __repr__(self):
        return (f"qkv.Explanation({len(self.ids)} tokens, layers {self.layers}, "
                f"heads {self.heads})")

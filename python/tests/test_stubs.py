"""The type stubs describe the package as it is: every public name and Model / Explanation method
is in __init__.pyi, and every stubbed function exists."""
import ast
import pathlib

import qkv


def stub_tree(name):
    return ast.parse((pathlib.Path(qkv.__file__).parent / name).read_text())


def test_stub_names_match_the_package():
    tree = stub_tree("__init__.pyi")
    top = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert set(qkv.__all__) <= top, set(qkv.__all__) - top
    for name in top:
        assert hasattr(qkv, name), f"the stubs declare qkv.{name}, which does not exist"
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    for cls in ("Model", "Explanation"):
        stubbed = {n.name for n in classes[cls].body if isinstance(n, ast.FunctionDef)}
        stubbed |= {n.target.id for n in classes[cls].body if isinstance(n, ast.AnnAssign)}
        public = {n for n in dir(getattr(qkv, cls)) if not n.startswith("_")}
        assert public <= stubbed, f"{cls}: not in the stubs: {sorted(public - stubbed)}"
        for n in stubbed - {"__init__"}:
            assert hasattr(getattr(qkv, cls), n) or cls == "Explanation", f"{cls}.{n}"


def test_torch_stub():
    import qkv.torch
    tree = stub_tree("torch.pyi")
    for n in tree.body:
        if isinstance(n, (ast.FunctionDef, ast.ClassDef)):
            assert hasattr(qkv.torch, n.name)

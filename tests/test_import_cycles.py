"""The package's import graph has no cycle.

Every import statement counts, also those inside functions (an import placed there to dodge a
cycle is still a dependency). `from orthoalign.a import b` is an edge to the module
orthoalign.a.b where it exists, else to orthoalign.a; a module's implicit import of its parent
packages is not an edge (a package's `__init__` may import its own submodules).
"""

import ast
import os

import orthoalign

ROOT = os.path.dirname(os.path.abspath(orthoalign.__file__))


def _modules() -> dict[str, str]:
  """Dotted module name -> file, for every .py file of the package."""
  out = {}
  for folder, _, files in os.walk(ROOT):
    for name in files:
      if name.endswith(".py"):
        path = os.path.join(folder, name)
        rel = os.path.relpath(path, os.path.dirname(ROOT))[: -len(".py")].split(os.sep)
        if rel[-1] == "__init__":
          rel = rel[:-1]
        out[".".join(rel)] = path
  return out


def _imports(path: str, module: str, known: set[str]) -> set[str]:
  """The package's modules that `path` imports, anywhere in the file."""
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read(), path)
  package = module if path.endswith("__init__.py") else module.rsplit(".", 1)[0]
  out = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      out.update(alias.name for alias in node.names if alias.name in known)
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:  # relative: resolve against this module's package
        parts = package.split(".")
        base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
      for alias in node.names:
        full = f"{base}.{alias.name}"
        if full in known:
          out.add(full)
        elif base in known:
          out.add(base)
  out.discard(module)
  return out


def _graph() -> dict[str, set[str]]:
  modules = _modules()
  return {m: _imports(p, m, set(modules)) for m, p in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
  """One cycle as [a, b, ..., a], or None (iterative depth-first search)."""
  state: dict[str, int] = {}  # 1 = on the current path, 2 = done
  for start in sorted(graph):
    if start in state:
      continue
    path, stack = [start], [iter(sorted(graph[start]))]
    state[start] = 1
    while stack:
      nxt = next(stack[-1], None)
      if nxt is None:
        state[path.pop()] = 2
        stack.pop()
      elif state.get(nxt) == 1:
        return path[path.index(nxt) :] + [nxt]
      elif nxt not in state:
        state[nxt] = 1
        path.append(nxt)
        stack.append(iter(sorted(graph[nxt])))
  return None


def test_the_walker_finds_every_kind_of_import():
  graph = _graph()
  assert "orthoalign.config.dicts" in graph["orthoalign.models"]  # module level, `from a import b`
  assert "orthoalign.errors" in graph["orthoalign.config.dicts"]
  assert graph["orthoalign.errors"] == set()  # the errors import nothing of ours
  found = _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})
  assert found == ["a", "b", "c", "a"]
  assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle():
  cycle = _cycle(_graph())
  assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_config_helpers_import_no_layer():
  graph = _graph()
  for leaf in ("orthoalign.config.dicts", "orthoalign.config.upgrade"):
    assert graph[leaf] <= {"orthoalign.errors"}, (leaf, graph[leaf])


def test_the_data_layers_import_only_downward():
  """Offline datasets know nothing of what the models are fed; the inputs nothing of the models
  or the trainer.
  """
  above = {
    "orthoalign.datasets": ("orthoalign.inputs", "orthoalign.models", "orthoalign.train"),
    "orthoalign.inputs": ("orthoalign.models", "orthoalign.train"),
  }
  for module, deps in _graph().items():
    for layer, forbidden in above.items():
      if module == layer or module.startswith(layer + "."):
        bad = sorted(d for d in deps if d.startswith(forbidden))
        assert not bad, (module, bad)

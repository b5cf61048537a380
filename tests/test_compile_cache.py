"""The persistent compilation cache every entry point turns on."""

import os
import subprocess
import sys

from orthoalign import compile_cache


def test_default_dir_beside_the_dataset_cache(monkeypatch, tmp_path):
  monkeypatch.setenv("ORTHOALIGN_CACHE", str(tmp_path))
  monkeypatch.delenv(compile_cache.ENV, raising=False)
  assert compile_cache.default_dir() == os.path.join(str(tmp_path), "jax-compile")
  monkeypatch.setenv(compile_cache.ENV, str(tmp_path / "elsewhere"))
  assert compile_cache.default_dir() == str(tmp_path / "elsewhere")
  monkeypatch.setenv(compile_cache.ENV, "off")
  assert compile_cache.default_dir() is None


def test_enable_in_a_fresh_process_caches_compilations(tmp_path):
  """A new process compiles into the folder; a second identical process finds its entries there."""
  code = (
    "from orthoalign import compile_cache; import jax, jax.numpy as jnp; "
    "print(compile_cache.enable()); "
    "print(jax.config.jax_compilation_cache_max_size); "
    "jax.jit(lambda x: jnp.sin(x) * 2)(jnp.ones(3)).block_until_ready()"
  )
  env = {**os.environ, "ORTHOALIGN_CACHE": str(tmp_path), "JAX_PLATFORMS": "cpu"}
  env.pop(compile_cache.ENV, None)
  env.pop("JAX_COMPILATION_CACHE_DIR", None)
  out = subprocess.run(
    [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
  ).stdout.split()
  folder = os.path.join(str(tmp_path), "jax-compile")
  assert out == [folder, str(compile_cache.MAX_SIZE_BYTES)]
  entries = os.listdir(folder)
  assert entries
  subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, check=True)
  assert sorted(os.listdir(folder)) == sorted(entries)  # a hit: nothing new written


def test_off_leaves_jax_without_a_cache(tmp_path):
  code = "from orthoalign import compile_cache; print(compile_cache.enable())"
  env = {**os.environ, compile_cache.ENV: "off", "JAX_PLATFORMS": "cpu"}
  env.pop("JAX_COMPILATION_CACHE_DIR", None)
  out = subprocess.run(
    [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
  ).stdout.strip()
  assert out == "None"

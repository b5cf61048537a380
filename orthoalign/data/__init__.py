"""Datasets: on-disk formats, recipes, the cache, and what a model reads of them."""

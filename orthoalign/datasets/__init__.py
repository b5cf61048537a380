"""Offline datasets: formats and their readers, recipes, download, the store (cache), statistics,
the synthetic generator and item text embeddings. What the models are fed is in inputs/.
"""

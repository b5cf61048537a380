"""Readers: each turns one on-disk format into a CDSRDataset."""

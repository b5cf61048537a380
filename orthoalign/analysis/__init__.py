"""Turning runs into tables: load results.jsonl files, aggregate over seeds, write markdown."""

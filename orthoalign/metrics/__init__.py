"""Ranking metrics, alignment statistics and their keys."""

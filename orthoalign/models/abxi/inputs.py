"""ABXI's inputs besides its windows (inputs/abxi_windows.py): how negatives are scored."""

from orthoalign.models.infonce import catalog_scoring

__all__ = ["catalog_scoring"]

"""orthoalign: gated cross-attention and orthogonal alignment for cross-domain recommendation."""

__version__ = "0.1.0"

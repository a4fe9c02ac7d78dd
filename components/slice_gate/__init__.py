"""SliceGate: the compression gate's verdict on each large enough slice."""

from components.slice_gate.component import SliceGate

__all__ = ["SliceGate"]

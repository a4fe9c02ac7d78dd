"""leanline's own artifact types under the names TFX's Kubeflow entrypoint imports them by.

TFX's KFP v2 compiler writes a custom artifact type as its TYPE_NAME, which must read
`<namespace>.<Title>` (`leanline.CompressionReport`), and the container entrypoint turns
that title back into the class by importing it as a class path: module `leanline`,
attribute `CompressionReport`. So every custom artifact type of a component is named
`leanline.<Class>` and imported here; tests/test_kubeflow.py checks that each custom
type in a compiled package imports as its class.
"""

from components.compressor.component import CompressionReport

__all__ = ["CompressionReport"]

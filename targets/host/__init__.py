"""Host target: C built with the system compiler and loaded into Python through cffi."""
from targets.host.cbuild import KERNELS_DIR, build_c

__all__ = ["KERNELS_DIR", "build_c"]

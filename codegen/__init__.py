"""C code generation: a scheduled, planned training graph becomes a self-contained C project."""
import codegen.ops_math  # noqa: F401  (registers the math emitters)
import codegen.ops_tile  # noqa: F401  (registers the tile emitters)
from codegen.project import CProject, generate

__all__ = ["CProject", "generate"]

"""C code generation: a scheduled, planned training graph becomes a self-contained C project."""
from codegen.project import CProject, generate

__all__ = ["CProject", "generate"]

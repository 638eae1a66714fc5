"""Static memory planning: every arena value gets a lifetime and a fixed byte offset."""
from tte.memory.planner import ALIGN, Buffer, MemoryPlan, place, plan_memory
from tte.memory.report import memory_report, with_constant_tables

__all__ = ["ALIGN", "Buffer", "MemoryPlan", "place", "plan_memory", "memory_report", "with_constant_tables"]

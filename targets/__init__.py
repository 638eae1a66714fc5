"""Per-target toolchains and runners (host via cffi today)."""

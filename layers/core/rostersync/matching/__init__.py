"""The rules of a sync: snapshot + directory index → plan. Pure functions, no I/O."""

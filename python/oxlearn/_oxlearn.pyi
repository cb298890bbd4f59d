# Hand-written stubs for the compiled module oxlearn._oxlearn (checked by mypy.stubtest in CI).
from typing import Any

__version__: str

def build_info() -> dict[str, Any]: ...

# --- neighbours (rust/oxlearn-py/src/neighbors.rs) -------------------------------------------

# --- end neighbours ---------------------------------------------------------------------------

# --- MLP (rust/oxlearn-py/src/mlp.rs) ---------------------------------------------------------

# --- end MLP ----------------------------------------------------------------------------------

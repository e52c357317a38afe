"""Online adapters for the causal SARM and RewACT families (registered on import)."""

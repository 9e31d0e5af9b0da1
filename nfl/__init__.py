"""nfl: a simulator for the trade-off between adaptability and efficiency in LoRA-style adapters."""

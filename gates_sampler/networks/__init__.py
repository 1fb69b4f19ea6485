"""PyTorch networks built from architectures (NAS-Bench-201, DARTS / NAS-Bench-301, NAS-Bench-101)."""

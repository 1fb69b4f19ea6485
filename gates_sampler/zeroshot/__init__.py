"""Zero-shot metrics of real networks and their on-disk cache (GATES++)."""

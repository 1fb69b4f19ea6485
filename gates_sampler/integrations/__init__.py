"""Framework adapters (Optuna, Ray Tune); each imports its framework lazily."""

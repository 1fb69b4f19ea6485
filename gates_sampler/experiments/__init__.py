"""Experiment harnesses behind ``gates-nas compare`` and ``gates-nas eval-predictor``.

- :mod:`gates_sampler.experiments.comparison`: search efficiency of ask/tell methods on look-up benchmarks
  (runs, summary tables, plots).
- :mod:`gates_sampler.experiments.predictor_quality`: the paper's predictor-ranking protocol (Kendall's tau,
  N@K, P@K on NAS-Bench-201 subsets).

Nothing here is imported by the search core; importing these modules changes no global state (loggers,
matplotlib backends).
"""

"""The property-testing kit: Hypothesis strategies (:mod:`validation.kit.strategies`), slow but
trustworthy references (:mod:`validation.kit.oracles`) and ready-made checks of a user's solver
(:mod:`validation.kit.checks`). Also importable under their first published paths,
``validation.strategies``, ``validation.oracles`` and ``validation.checks``."""

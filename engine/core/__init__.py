"""The run core: everything about runs that needs no model library.

The run spec, the store (which owns every SQL statement), the tracker, the errors, the run
folders and the process lifecycle live here. The app imports this package and nothing else of
the engine; the model work (loading, generation, training, rollouts, pipeline, CLI) sits above
it. import-linter contracts in pyproject.toml keep both boundaries.
"""

"""AutoSlim-style channel search (placeholder until the search lands)."""

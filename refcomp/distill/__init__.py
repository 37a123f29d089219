"""Knowledge distillation (placeholder until it lands)."""

"""tfwsar.models."""

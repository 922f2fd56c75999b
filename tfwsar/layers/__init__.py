"""tfwsar.layers."""

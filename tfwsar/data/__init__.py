"""tfwsar.data."""

"""tfwsar.recipes."""

"""A user's own model and dataset factories, named by import path in tests (`--model userzoo.models:mlp`)."""

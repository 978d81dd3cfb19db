"""The canonical roster model shared by providers, matching, the directory and reports."""

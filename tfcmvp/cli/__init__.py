"""Command-line layer: argument parsing only; the work lives in the library."""

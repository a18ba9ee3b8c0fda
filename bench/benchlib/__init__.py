"""Modules of bench/reload-under-load (see that script and bench/README.md)."""

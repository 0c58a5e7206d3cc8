"""The built-in workloads, defined once and framework-neutrally."""

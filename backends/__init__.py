"""The built-in backends, one module per framework. No framework is imported at module level."""

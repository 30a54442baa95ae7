"""Built-in adapters, one module per library: each declares the library's own conventions, cited from its source."""

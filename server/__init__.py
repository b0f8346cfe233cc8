"""The coordinator: ServerApp, round loop, centralised evaluation and run records."""

"""vmkeeper: keep a web app on one small VM deployed, healthy and recoverable.

Importing the package does nothing but define it: each entry point configures logging itself
(`vmkeeper.logs.configure()`), so a worker or a CLI start pays only for what it uses.
"""

__version__ = "0.1.0"

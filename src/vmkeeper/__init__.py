"""vmkeeper: keep a web app on one small VM deployed, healthy and recoverable.

Importing the package does nothing but define it: the entry points (the CLI's ``main``) configure
logging, so a worker or supervisor that imports one module pays for that module only.
"""

__version__ = "0.1.0"

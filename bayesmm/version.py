"""bayesmm's version, read by the package, saved fits and the compiled-model caches."""

__version__ = "0.1.0"

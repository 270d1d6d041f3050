"""The compiled part of bayesmm: engine.c as an extension module, built at installation (the
rest of the package's configuration is in pyproject.toml)."""

from setuptools import Extension, setup

ENGINE = Extension(
    "bayesmm.inference._engine",
    sources=["bayesmm/inference/engine_module.c"],
    depends=["bayesmm/inference/engine.c", "bayesmm/inference/engine_fields.h", "bayesmm/inference/hmc.c"],
    # Strict IEEE arithmetic: no fused multiply-adds, so every machine computes the same bits.
    # No floating-point traps are used, so the compiler may compute both sides of a select
    # (which lets it vectorise engine.c's exp and log); results are unchanged.
    extra_compile_args=["-std=gnu99", "-ffp-contract=off", "-fno-fast-math", "-fno-trapping-math"],
    libraries=["m"],
    # Where no compiler works, bayesmm installs without it and samples every model through
    # PyTensor's graph (and says so once).
    optional=True,
)

setup(ext_modules=[ENGINE])
